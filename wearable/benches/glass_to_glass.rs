//! Wearable benchmark: the glasses simulator rendering off-screen, encoding and publishing
//! through a relay on this machine to a native agent. Per size: frames per second that reach
//! the agent, and glass-to-glass delay (a frame's capture stamp, taken when it was rendered,
//! to the frame complete at the agent) p50/p95. Reference, same relay and size, same run: the
//! probe (GStreamer test video, nothing rendered), so the difference is what rendering and
//! read-back on this machine's (software) GPU cost.
//!
//! `cargo bench -p farsight-wearable --bench glass_to_glass`; FARSIGHT_BENCH_SECONDS sets
//! each measuring window.

#[path = "../../server/benches/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use farsight_client::Watcher;
use farsight_protocol::Micros;
use serde_json::json;
use support::{RUN_LIMIT, Relay};

const SIZES: [(u32, u32); 2] = [(1280, 720), (640, 360)];
const WARM_UP: Duration = Duration::from_secs(3);

struct Window {
    frames: usize,
    fps: f64,
    delays_ms: Vec<f64>,
}

/// Frames seen by `watcher` over `length`, after a warm-up.
async fn measure(watcher: &mut Watcher, length: Duration) -> Window {
    let warm = Instant::now() + WARM_UP;
    while Instant::now() < warm {
        let _ = tokio::time::timeout(Duration::from_secs(5), watcher.next_object()).await;
    }
    let started = Instant::now();
    let mut delays_ms = Vec::new();
    while started.elapsed() < length {
        if let Ok(Some(r)) = tokio::time::timeout(length, watcher.next_object()).await {
            let now = Micros::now().0;
            delays_ms.push(now.saturating_sub(r.object.capture.0) as f64 / 1000.0);
        }
    }
    delays_ms.sort_by(f64::total_cmp);
    Window {
        frames: delays_ms.len(),
        fps: delays_ms.len() as f64 / started.elapsed().as_secs_f64(),
        delays_ms,
    }
}

async fn simulator(relay: &Relay, size: (u32, u32), length: Duration) -> Window {
    let mut wearable = relay
        .wearable_sized(&relay.wearable_token, size, &[])
        .expect("farsight-wearable starts");
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let session = relay
        .session(&mut wearable, deadline)
        .await
        .expect("the simulator opens a session");
    let (_agent, mut watcher) = relay.watch(session).await.expect("an agent watches");
    let window = measure(&mut watcher, length).await;
    let _ = wearable.child.kill().await;
    window
}

async fn probe(relay: &Relay, size: (u32, u32), length: Duration) -> Window {
    let (session, publishing) = relay.probe(size).await.expect("the probe publishes");
    let (_agent, mut watcher) = relay.watch(session).await.expect("an agent watches");
    let window = measure(&mut watcher, length).await;
    publishing.abort();
    window
}

#[tokio::main]
async fn main() {
    let seconds: u64 = common::env_or("FARSIGHT_BENCH_SECONDS", 10);
    let length = Duration::from_secs(seconds);
    let mut rows = Vec::new();
    let mut table = String::new();
    for size in SIZES {
        let relay = Relay::start().await.expect("relay starts");
        let sim = simulator(&relay, size, length).await;
        let reference = probe(&relay, size, length).await;
        let row = format!(
            "| {}×{} | {:.1} fps | {:.1} ms | {:.1} ms | {:.1} fps | {:.1} ms | {:.1} ms |",
            size.0,
            size.1,
            sim.fps,
            common::percentile(&sim.delays_ms, 50.0),
            common::percentile(&sim.delays_ms, 95.0),
            reference.fps,
            common::percentile(&reference.delays_ms, 50.0),
            common::percentile(&reference.delays_ms, 95.0),
        );
        println!("{row}");
        table.push_str(&row);
        table.push('\n');
        rows.push(json!({"width": size.0, "height": size.1,
            "simulator": {"frames": sim.frames, "fps": sim.fps,
                "glass_to_glass_ms_p50": common::percentile(&sim.delays_ms, 50.0),
                "glass_to_glass_ms_p95": common::percentile(&sim.delays_ms, 95.0)},
            "probe": {"frames": reference.frames, "fps": reference.fps,
                "glass_to_glass_ms_p50": common::percentile(&reference.delays_ms, 50.0),
                "glass_to_glass_ms_p95": common::percentile(&reference.delays_ms, 95.0)}}));
        relay.running.shutdown().await;
    }
    common::write_json(
        "wearable",
        &json!({"date": common::today(), "commit": common::git_commit(), "machine": common::machine(),
            "seconds": seconds, "sizes": rows}),
    )
    .expect("writing benchmarks/wearable.json");
    common::write_section(
        "wearable",
        &format!(
            "## Wearable\n\n`cargo bench -p farsight-wearable --bench glass_to_glass` on {} ({}, commit {}, \
             no GPU: Mesa's software Vulkan renders): the glasses simulator renders its workbench \
             off-screen, reads each frame back, encodes it (x264, zerolatency) and publishes it \
             through a relay on this machine to a native agent; {seconds} s per size after a 3 s \
             warm-up. Glass-to-glass is a frame's capture stamp (taken when it was rendered) to the \
             frame complete at the agent, one clock. Reference, same relay, size and run: the probe, \
             whose GStreamer test source renders nothing.\n\n\
             | size | simulator | glass-to-glass p50 | p95 | probe | probe p50 | p95 |\n\
             |---|---|---|---|---|---|---|\n{table}",
            common::today(),
            common::machine(),
            common::git_commit(),
        ),
    )
    .expect("writing BENCHMARKS.md");
}
