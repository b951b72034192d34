//! Annotation round trip: an agent sends a mark on the latest frame it watched and waits for
//! the wearable's `AnchorResolved`, through a relay on this machine. The wearable anchors the
//! mark (ray casts into the scene) and spawns its meshes in the frame it answers in, so the
//! answer reaching the agent bounds when the mark is drawn on the glasses, one render later.
//! Reference, same relay and run: the probe, which answers with a plane anchor as soon as the
//! mark arrives, so the difference is the wearable's frame loop and anchoring.
//!
//! `cargo bench -p farsight-wearable --bench annotation_round_trip`; FARSIGHT_BENCH_MARKS
//! sets how many marks each side gets.

#[path = "../../server/benches/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use farsight_client::Connection;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, ControlMessage, FrameSeq, ParticipantId, SessionId,
    Style,
};
use serde_json::json;
use support::{HEIGHT, RUN_LIMIT, Relay, WIDTH};
use tokio::sync::watch;

const ANSWER_LIMIT: Duration = Duration::from_secs(10);

/// Milliseconds from sending each of `marks` marks to its `AnchorResolved`, sorted.
async fn round_trips(relay: &Relay, session: SessionId, marks: u64) -> Vec<f64> {
    let (mut agent, mut watcher) = relay.watch(session).await.expect("an agent watches");
    // The latest frame seen, so every mark is on a frame the wearable still remembers.
    let first = watcher.next_object().await.expect("a frame").object.frame;
    let (latest_tx, latest) = watch::channel(first);
    let drain = tokio::spawn(async move {
        while let Some(received) = watcher.next_object().await {
            let _ = latest_tx.send(received.object.frame);
        }
    });
    let mut ms = Vec::new();
    for id in 1..=marks {
        let sent = Instant::now();
        send_circle(&mut agent, session, id, *latest.borrow()).await;
        agent
            .wait_for(ANSWER_LIMIT, |m| {
                matches!(m, ControlMessage::AnchorResolved { id: got, .. } if got.0 == id)
                    .then_some(())
            })
            .await
            .expect("the mark is anchored");
        ms.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    drain.abort();
    ms.sort_by(f64::total_cmp);
    ms
}

async fn send_circle(agent: &mut Connection, session: SessionId, id: u64, frame: FrameSeq) {
    agent
        .send(&ControlMessage::Annotate(Annotate {
            session,
            id: AnnotationId(id),
            author: ParticipantId(0),
            kind: AnnotationKind::Circle,
            frame,
            points: vec![[0.45, 0.5], [0.5, 0.5]],
            style: Style::default(),
            text: String::new(),
        }))
        .await
        .expect("the mark is sent");
}

#[tokio::main]
async fn main() {
    let marks: u64 = common::env_or("FARSIGHT_BENCH_MARKS", 50);
    let relay = Relay::start().await.expect("relay starts");

    let mut wearable = relay
        .wearable(&relay.wearable_token, &[])
        .expect("farsight-wearable starts");
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let session = relay
        .session(&mut wearable, deadline)
        .await
        .expect("the simulator opens a session");
    let simulator = round_trips(&relay, session, marks).await;
    let _ = wearable.child.kill().await;

    let (session, publishing) = relay
        .probe((WIDTH, HEIGHT))
        .await
        .expect("the probe publishes");
    let reference = round_trips(&relay, session, marks).await;
    publishing.abort();
    relay.running.shutdown().await;

    let p = |ms: &[f64], q| common::percentile(ms, q);
    let row = format!(
        "| {WIDTH}×{HEIGHT} | {marks} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        p(&simulator, 50.0),
        p(&simulator, 95.0),
        p(&reference, 50.0),
        p(&reference, 95.0),
    );
    println!("{row}");
    common::write_json(
        "wearable-annotation",
        &json!({"date": common::today(), "commit": common::git_commit(), "machine": common::machine(),
            "marks": marks, "width": WIDTH, "height": HEIGHT,
            "simulator_ms": {"p50": p(&simulator, 50.0), "p95": p(&simulator, 95.0)},
            "probe_ms": {"p50": p(&reference, 50.0), "p95": p(&reference, 95.0)}}),
    )
    .expect("writing benchmarks/wearable-annotation.json");
    common::write_section(
        "wearable-annotation",
        &format!(
            "### Annotation round trip\n\n`cargo bench -p farsight-wearable --bench \
             annotation_round_trip` on {} ({}, commit {}, no GPU): an agent sends a circle on \
             the latest frame it watched and waits for the wearable's `AnchorResolved`, one mark \
             at a time, through a relay on this machine. The simulator runs headless, at most 30 \
             fps (software Vulkan manages about 18 at this size); it anchors the mark by ray casts into the scene and spawns \
             its meshes in the frame it answers in, so the mark is on the glasses one render \
             after the answer leaves. Reference, same relay and run: the probe, which anchors on \
             a plane as soon as the mark arrives.\n\n\
             | size | marks | simulator p50 | p95 | probe p50 | p95 |\n\
             |---|---|---|---|---|---|\n{row}\n",
            common::today(),
            common::machine(),
            common::git_commit(),
        ),
    )
    .expect("writing BENCHMARKS.md");
}
