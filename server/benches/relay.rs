//! Relay benchmark: one publisher to 1, 10 and 50 watchers at 2 Mbit/s and 30 fps. Reports
//! forwarded throughput, the server's CPU time per forwarded Gbit and the latency the relay
//! adds; raw quinn throughput on the same loopback, measured in the same run, is the
//! reference.
//!
//! `cargo bench -p farsight-server --bench relay`; FARSIGHT_BENCH_SECONDS sets each case's
//! length (default 10). The server runs in a child process so its CPU time is its own.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use farsight_client::{ConnectOptions, Connection, Trust, WatchEvent, connect, parse_fingerprint};
use farsight_protocol::{
    CameraModel, FrameSeq, Intrinsics, Micros, Object, ObjectFlags, Pose, Role, SessionId,
};
use serde_json::json;

const FPS: u64 = 30;
const BITRATE: u64 = 2_000_000;
const GOP: u64 = 30;
const WATCHERS: [usize; 3] = [1, 10, 50];
/// Latency samples from the first second are dropped: connections are still warming up.
const WARM_UP: Duration = Duration::from_secs(1);

fn main() {
    if std::env::var("FARSIGHT_BENCH_ROLE").as_deref() == Ok("server") {
        return server_process();
    }
    let seconds: u64 = std::env::var("FARSIGHT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run(Duration::from_secs(seconds)));
}

/// The child: a real server on loopback; prints where it is and its tokens, then serves
/// until its stdin closes.
fn server_process() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let running = farsight_server::start(&farsight_server::ServeConfig::ephemeral(dir.path()))
            .await
            .expect("server starts");
        let store = &running.shared.store;
        let (_, wearable) = store.create_token(Role::Wearable, "bench-glasses").await.expect("token");
        let (_, agent) = store.create_token(Role::Agent, "bench-agent").await.expect("token");
        let hello = json!({"quic": running.quic_addr.to_string(), "fingerprint": running.fingerprint,
            "wearable": wearable, "agent": agent});
        println!("{hello}");
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            let _ = std::io::stdin().read_line(&mut sink);
        })
        .await
        .expect("stdin watcher");
        running.shutdown().await;
    });
}

struct ServerChild {
    child: Child,
    options: ConnectOptions,
    wearable: String,
    agent: String,
}

impl ServerChild {
    fn spawn() -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env("FARSIGHT_BENCH_ROLE", "server")
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server child starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("server hello");
        let hello: serde_json::Value = serde_json::from_str(&line).expect("server hello is JSON");
        let text = |k: &str| hello[k].as_str().expect("field").to_string();
        let options = ConnectOptions {
            server: text("quic").parse().expect("address"),
            server_name: "localhost".into(),
            trust: Trust::Fingerprint(
                parse_fingerprint(&text("fingerprint")).expect("fingerprint"),
            ),
            role: Role::Wearable,
            token: text("wearable"),
            resume: SessionId(0),
            receive_window: None,
        };
        Self {
            child,
            options,
            wearable: text("wearable"),
            agent: text("agent"),
        }
    }

    /// utime + stime of the server process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("proc stat");
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 =
            fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        ticks / clock_ticks()
    }

    fn connection(&self, role: Role, token: &str) -> ConnectOptions {
        ConnectOptions {
            role,
            token: token.to_string(),
            ..self.options.clone()
        }
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// utime + stime of a process (`self` for this one), in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Frame sizes averaging `BITRATE` at `FPS`, key frames four times a delta.
fn frame_size(seq: u64) -> usize {
    let average = (BITRATE / 8 / FPS) as f64;
    let delta = average * GOP as f64 / (GOP as f64 + 3.0);
    if seq.is_multiple_of(GOP) {
        (delta * 4.0) as usize
    } else {
        delta as usize
    }
}

fn object(seq: u64) -> Object {
    Object {
        frame: FrameSeq(seq),
        capture: Micros::now(),
        flags: ObjectFlags {
            keyframe: seq.is_multiple_of(GOP),
        },
        camera: CameraModel {
            pose: Pose::IDENTITY,
            intrinsics: Intrinsics::from_hfov(1280, 720, 1.2),
        },
        payload: Bytes::from(vec![0x5a; frame_size(seq)]),
    }
}

#[derive(Default)]
struct Received {
    payload_bytes: u64,
    frames: u64,
    dropped_groups: u64,
    delays_ms: Vec<f64>,
}

async fn watch(conn: Connection, until: Instant, warm: Instant) -> Received {
    let mut watcher = conn.watcher();
    let mut got = Received::default();
    while let Ok(Some(event)) = tokio::time::timeout_at(until.into(), watcher.next()).await {
        match event {
            WatchEvent::Object(r) => {
                got.frames += 1;
                got.payload_bytes += r.object.payload.len() as u64;
                if r.at >= warm {
                    got.delays_ms
                        .push((Micros::now().0 as f64 - r.object.capture.0 as f64) / 1000.0);
                }
            }
            WatchEvent::End(farsight_client::GroupEnd::Dropped { .. }) => got.dropped_groups += 1,
            WatchEvent::End(_) => {}
        }
    }
    conn.close();
    got
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

struct Case {
    watchers: usize,
    forwarded_mbps: f64,
    cpu_seconds_per_gbit: f64,
    p50_ms: f64,
    p99_ms: f64,
    frames_expected: u64,
    frames_received: u64,
    dropped_groups: u64,
}

async fn relay_case(server: &ServerChild, watchers: usize, length: Duration) -> Case {
    let wearable = connect(&server.connection(Role::Wearable, &server.wearable))
        .await
        .expect("wearable");
    let mut agents = Vec::new();
    for _ in 0..watchers {
        let mut agent = connect(&server.connection(Role::Agent, &server.agent))
            .await
            .expect("agent");
        agent.join(wearable.session).await.expect("joins");
        agents.push(agent);
    }
    // Give the server a moment to register the last watcher before the first frame.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let (until, warm) = (start + length + Duration::from_millis(500), start + WARM_UP);
    let readers: Vec<_> = agents
        .into_iter()
        .map(|a| tokio::spawn(watch(a, until, warm)))
        .collect();

    let cpu_before = server.cpu_seconds();
    let mut publisher = wearable.publisher();
    let frames = length.as_secs() * FPS;
    for seq in 0..frames {
        tokio::time::sleep_until((start + Duration::from_secs_f64(seq as f64 / FPS as f64)).into())
            .await;
        publisher.send(&object(seq)).await.expect("published");
    }
    publisher.finish();
    let mut total = Received::default();
    for r in readers {
        let got = r.await.expect("watcher task");
        total.payload_bytes += got.payload_bytes;
        total.frames += got.frames;
        total.dropped_groups += got.dropped_groups;
        total.delays_ms.extend(got.delays_ms);
    }
    let cpu = server.cpu_seconds() - cpu_before;
    wearable.close();
    total.delays_ms.sort_by(f64::total_cmp);
    let gbits = total.payload_bytes as f64 * 8.0 / 1e9;
    Case {
        watchers,
        forwarded_mbps: total.payload_bytes as f64 * 8.0 / length.as_secs_f64() / 1e6,
        cpu_seconds_per_gbit: cpu / gbits,
        p50_ms: percentile(&total.delays_ms, 50.0),
        p99_ms: percentile(&total.delays_ms, 99.0),
        frames_expected: frames * watchers as u64,
        frames_received: total.frames,
        dropped_groups: total.dropped_groups,
    }
}

struct Raw {
    gbps: f64,
    /// CPU of both ends together per Gbit: what moving the bytes costs quinn itself.
    cpu_seconds_per_gbit: f64,
}

/// Raw quinn on loopback with the server's own TLS set-up: one stream, as fast as it goes.
async fn raw_quinn() -> Raw {
    const BYTES: usize = 256 << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let identity = farsight_server::cert::dev_identity(dir.path()).expect("certificate");
    let server =
        farsight_server::quic::endpoint(&identity, "127.0.0.1:0".parse().expect("address"))
            .expect("endpoint");
    let addr = server.local_addr().expect("bound");
    let receiver = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("handshake");
        let mut stream = conn.accept_uni().await.expect("stream");
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while let Some(n) = stream.read(&mut buf).await.expect("read") {
            total += n;
        }
        total
    });
    let mut client =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("address")).expect("client");
    let pin = parse_fingerprint(&identity.fingerprint).expect("fingerprint");
    client.set_default_client_config(
        farsight_client::quic_client_config(&Trust::Fingerprint(pin)).expect("client config"),
    );
    let conn = client
        .connect(addr, "localhost")
        .expect("connect")
        .await
        .expect("handshake");
    let chunk = Bytes::from(vec![0xa5u8; 1 << 16]);
    let cpu_before = cpu_seconds("self");
    let started = Instant::now();
    let mut stream = conn.open_uni().await.expect("stream");
    for _ in 0..BYTES / chunk.len() {
        stream.write_chunk(chunk.clone()).await.expect("write");
    }
    stream.finish().expect("finish");
    let received = receiver.await.expect("receiver");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu_before;
    assert_eq!(received, BYTES);
    let gbits = received as f64 * 8.0 / 1e9;
    Raw {
        gbps: gbits / seconds,
        cpu_seconds_per_gbit: cpu / gbits,
    }
}

async fn run(length: Duration) {
    let raw = raw_quinn().await;
    println!(
        "raw quinn loopback: {:.2} Gbit/s, {:.2} CPU s/Gbit (both ends)",
        raw.gbps, raw.cpu_seconds_per_gbit
    );
    let server = ServerChild::spawn();
    let mut cases = Vec::new();
    for watchers in WATCHERS {
        let case = relay_case(&server, watchers, length).await;
        println!(
            "{:>3} watchers: forwarded {:>7.1} Mbit/s ({:.2}% of raw quinn), server CPU {:.2} s/Gbit, added latency p50 {:.2} ms p99 {:.2} ms, frames {}/{}, dropped groups {}",
            case.watchers,
            case.forwarded_mbps,
            case.forwarded_mbps / 1000.0 / raw.gbps * 100.0,
            case.cpu_seconds_per_gbit,
            case.p50_ms,
            case.p99_ms,
            case.frames_received,
            case.frames_expected,
            case.dropped_groups
        );
        cases.push(case);
    }
    report(&raw, length, &cases);
}

fn report(raw: &Raw, length: Duration, cases: &[Case]) {
    let rows: Vec<_> = cases
        .iter()
        .map(|c| {
            json!({"watchers": c.watchers, "forwarded_mbps": c.forwarded_mbps,
            "share_of_raw_quinn": c.forwarded_mbps / 1000.0 / raw.gbps,
            "server_cpu_seconds_per_gbit": c.cpu_seconds_per_gbit,
            "added_latency_ms_p50": c.p50_ms, "added_latency_ms_p99": c.p99_ms,
            "frames_expected": c.frames_expected, "frames_received": c.frames_received,
            "dropped_groups": c.dropped_groups})
        })
        .collect();
    common::write_json(
        "relay",
        &json!({"date": common::today(), "commit": common::git_commit(),
        "machine": common::machine(), "seconds_per_case": length.as_secs(),
        "raw_quinn_gbps": raw.gbps,
        "raw_quinn_cpu_seconds_per_gbit": raw.cpu_seconds_per_gbit, "cases": rows}),
    )
    .expect("writing benchmarks/relay.json");

    let mut table = String::from(
        "| watchers | forwarded | share of raw quinn | server CPU per forwarded Gbit | added latency p50 | p99 | frames received |\n|---|---|---|---|---|---|---|\n",
    );
    for c in cases {
        table += &format!(
            "| {} | {:.1} Mbit/s | {:.2}% | {:.2} s | {:.2} ms | {:.2} ms | {}/{} |\n",
            c.watchers,
            c.forwarded_mbps,
            c.forwarded_mbps / 1000.0 / raw.gbps * 100.0,
            c.cpu_seconds_per_gbit,
            c.p50_ms,
            c.p99_ms,
            c.frames_received,
            c.frames_expected
        );
    }
    let ten = cases.iter().find(|c| c.watchers == 10);
    let verdict = match ten {
        Some(c) if c.p99_ms < 5.0 => format!("met ({:.2} ms)", c.p99_ms),
        Some(c) => format!("missed ({:.2} ms)", c.p99_ms),
        None => "not measured".into(),
    };
    let section = format!(
        "## Relay\n\n`cargo bench -p farsight-server --bench relay` on {} ({}, commit {}): one \
         publisher at 2 Mbit/s and 30 fps (a key frame every 30, four times a delta frame), \
         {} s per case, server in its own process, publisher and watchers in the benchmark \
         process on the same machine. Added latency is arrival at a watcher minus the frame's \
         capture stamp (one clock), after a 1 s warm-up. Reference in the same run: raw quinn \
         on loopback with the same TLS set-up, one stream: {:.2} Gbit/s at {:.2} CPU s per Gbit \
         (both ends together). The server's CPU per Gbit is coarse at 1 watcher (a few clock \
         ticks in all) and includes receiving the publisher's stream.\n\n{table}\n\
         Target p99 added latency under 5 ms at 10 watchers: {verdict}. Full figures: \
         `benchmarks/relay.json`.\n",
        common::today(),
        common::machine(),
        common::git_commit(),
        length.as_secs(),
        raw.gbps,
        raw.cpu_seconds_per_gbit
    );
    common::write_section("relay", &section).expect("writing BENCHMARKS.md");
    let _ = std::io::stdout().flush();
}
