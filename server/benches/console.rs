//! Console benchmark: delay from the wearable's capture timestamp to the frame painted in
//! the browser (Debian's Chromium, headless, software H.264 decoding by WebCodecs), over
//! WebTransport and over the WebSocket fallback, for the probe's 1280×720 at 30 fps. The
//! reference, measured over the same seconds, is a native QUIC watcher's capture → frame
//! received: what the browser adds is decoding, painting and its gateway hop.
//!
//! `cargo bench -p farsight-server --bench console`; FARSIGHT_BENCH_SECONDS sets each window.

#[path = "common/mod.rs"]
mod common;
#[path = "../../tests/support/console_driver.rs"]
mod console_driver;

use std::sync::{Arc, Mutex};

use console_driver::{Driver, Run};
use farsight_client::{ConnectOptions, Trust, connect, parse_fingerprint};
use farsight_protocol::{Micros, Role, SessionId};
use farsight_server::probe::{self, EncoderSettings, PublishOptions};
use farsight_server::{Running, ServeConfig};
use serde_json::json;

/// Delays in µs from the page, as sorted milliseconds.
fn sorted_ms(samples: &serde_json::Value) -> Vec<f64> {
    let mut ms: Vec<f64> = samples
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(|v| v.as_f64())
        .map(|us| us / 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn options(running: &Running, role: Role, token: &str) -> ConnectOptions {
    ConnectOptions {
        server: running.quic_addr,
        server_name: "localhost".into(),
        trust: Trust::Fingerprint(parse_fingerprint(&running.fingerprint).expect("fingerprint")),
        role,
        token: token.into(),
        resume: SessionId(0),
        receive_window: None,
    }
}

struct Window {
    transport: String,
    /// Capture → drawn on the canvas.
    drawn_ms: Vec<f64>,
    /// Capture → the animation frame after it was drawn.
    browser_ms: Vec<f64>,
    native_ms: Vec<f64>,
    dropped: String,
}

#[tokio::main]
async fn main() {
    let seconds: u64 = common::env_or("FARSIGHT_BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let running = farsight_server::start(&ServeConfig::ephemeral(dir.path()))
        .await
        .expect("server starts");
    let token = |role, name: &'static str| {
        let store = running.shared.store.clone();
        async move { store.create_token(role, name).await.expect("token").1 }
    };
    let wearable_token = token(Role::Wearable, "glasses").await;
    let agent_token = token(Role::Agent, "Ada").await;
    let observer_token = token(Role::Agent, "native").await;

    let mut wearable = connect(&options(&running, Role::Wearable, &wearable_token))
        .await
        .expect("wearable connects");
    let session = wearable.session;
    let publishing = tokio::spawn(async move {
        let options = PublishOptions {
            encoder: EncoderSettings::default(),
            duration: None,
            marks: None,
            reconnect: None,
        };
        probe::publish(&mut wearable, &options).await
    });

    // The native reference: capture → received at a QUIC watcher, on the same stream.
    let mut native = connect(&options(&running, Role::Agent, &observer_token))
        .await
        .expect("native watcher connects");
    native.join(session).await.expect("joins");
    let native_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let samples = native_ms.clone();
    let mut watcher = native.watcher();
    tokio::spawn(async move {
        while let Some(r) = watcher.next_object().await {
            let delay = Micros::now().0.saturating_sub(r.object.capture.0) as f64 / 1000.0;
            samples.lock().expect("lock").push(delay);
        }
    });

    let shots = tempfile::tempdir().expect("temp dir");
    let url = format!("http://{}/", running.http_addr);
    let mut windows = Vec::new();
    for block_udp in [false, true] {
        let run = Run {
            block_udp,
            bench_seconds: Some(seconds),
            ..Run::default()
        };
        let mut driver = Driver::start(&url, &agent_token, session.0, shots.path(), run);
        driver.step("measuring").await;
        native_ms.lock().expect("lock").clear();
        let result = driver.step("delays").await;
        let browser_ms = sorted_ms(&result["samples"]);
        let drawn_ms = sorted_ms(&result["drawn"]);
        let mut native: Vec<f64> = std::mem::take(&mut *native_ms.lock().expect("lock"));
        native.sort_by(f64::total_cmp);
        let window = Window {
            transport: result["transport"].as_str().unwrap_or("?").to_string(),
            drawn_ms,
            browser_ms,
            native_ms: native,
            dropped: result["dropped"].as_str().unwrap_or("?").to_string(),
        };
        println!(
            "{}: capture → drawn p50 {:.1} ms p95 {:.1} ms, → painted p50 {:.1} ms p95 {:.1} ms ({} frames, {}); native QUIC watcher p50 {:.1} ms p95 {:.1} ms",
            window.transport,
            common::percentile(&window.drawn_ms, 50.0),
            common::percentile(&window.drawn_ms, 95.0),
            common::percentile(&window.browser_ms, 50.0),
            common::percentile(&window.browser_ms, 95.0),
            window.browser_ms.len(),
            window.dropped,
            common::percentile(&window.native_ms, 50.0),
            common::percentile(&window.native_ms, 95.0),
        );
        let _ = driver.child.wait().await;
        windows.push(window);
    }
    publishing.abort();

    let rows: Vec<serde_json::Value> = windows
        .iter()
        .map(|w| {
            json!({"transport": w.transport, "frames_painted": w.browser_ms.len(), "dropped": w.dropped,
                "drawn_ms_p50": common::percentile(&w.drawn_ms, 50.0), "drawn_ms_p95": common::percentile(&w.drawn_ms, 95.0),
                "painted_ms_p50": common::percentile(&w.browser_ms, 50.0), "painted_ms_p95": common::percentile(&w.browser_ms, 95.0),
                "native_received_ms_p50": common::percentile(&w.native_ms, 50.0), "native_received_ms_p95": common::percentile(&w.native_ms, 95.0)})
        })
        .collect();
    common::write_json(
        "console",
        &json!({"date": common::today(), "commit": common::git_commit(), "machine": common::machine(),
            "seconds": seconds, "width": 1280, "height": 720, "fps": 30, "windows": rows}),
    )
    .expect("writing benchmarks/console.json");
    let table: String = windows
        .iter()
        .map(|w| {
            format!(
                "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {} ({}) |\n",
                w.transport,
                common::percentile(&w.drawn_ms, 50.0),
                common::percentile(&w.drawn_ms, 95.0),
                common::percentile(&w.browser_ms, 50.0),
                common::percentile(&w.browser_ms, 95.0),
                common::percentile(&w.native_ms, 50.0),
                common::percentile(&w.native_ms, 95.0),
                w.browser_ms.len(),
                w.dropped
            )
        })
        .collect();
    common::write_section(
        "console",
        &format!(
            "## Console\n\n`cargo bench -p farsight-server --bench console` on {} ({}, commit {}): the probe \
             publishes 1280×720 H.264 at 30 fps (x264, zerolatency) through the relay to the console in \
             headless Chromium (software decoding, WebCodecs), {seconds} s per transport after a second \
             to settle, everything on one machine and one clock. Capture is when the raw picture entered \
             the encoder, so every column includes encoding. Drawn is when the decoded picture was \
             drawn to the canvas; painted is the animation frame after that, up to one display \
             refresh (16.7 ms) later, depending on where the refresh falls against the 30 fps \
             stream, which is set by when the page opened: drawn is the figure to compare \
             commits by. Reference, same seconds: a native QUIC watcher of the same stream, \
             capture → frame received.\n\n\
             | transport | capture → drawn p50 | p95 | → painted p50 | p95 | native watcher p50 | p95 | frames painted |\n\
             |---|---|---|---|---|---|---|---|\n{table}",
            common::today(),
            common::machine(),
            common::git_commit(),
        ),
    )
    .expect("writing BENCHMARKS.md");
    running.shutdown().await;
}
