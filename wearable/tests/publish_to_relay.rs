//! Runs the real `farsight-wearable --sim --headless` against a relay started in-process and
//! watches its session as an agent: the simulator's view arrives as H.264, a key frame first
//! and in order, and every frame carries the pose the scripted head path had at that frame's
//! time — the relay sees the stream's pose metadata match the simulator's path. When the
//! relay restarts, the wearable resumes the same session by itself, within seconds. A real
//! camera source (GStreamer's test pattern) streams the same way, with its fixed camera.

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bevy::math::UVec2;
use farsight_client::Received;
use farsight_protocol::control::DepthSource;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, CameraModel, ControlMessage, Micros, ParticipantId,
    Style,
};
use farsight_wearable::camera_source::fixed_camera_model;
use farsight_wearable::headless::FRAME_STEP;
use farsight_wearable::simulator::head_camera;
use support::{HEIGHT, RUN_LIMIT, Relay, WIDTH};

/// Two groups of pictures (x264 opens a group every 30 frames) and part of a third.
const FRAMES: u64 = 45;

/// The NAL unit types of an Annex-B access unit, in order.
fn nal_types(payload: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < payload.len() {
        if payload[i..i + 3] == [0, 0, 1] {
            types.push(payload[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// The camera the simulator's head had at frame `seq`: frame N shows the head at N / 30 s.
fn expected_camera(seq: u64) -> CameraModel {
    let seconds = (FRAME_STEP * u32::try_from(seq).expect("few frames")).as_secs_f32();
    head_camera(seconds, UVec2::new(WIDTH, HEIGHT))
}

fn check_frame(received: &Received) -> Result<()> {
    let object = &received.object;
    let seq = object.frame.0;
    let payload = &object.payload[..];
    ensure!(
        payload.starts_with(&[0, 0, 0, 1]) || payload.starts_with(&[0, 0, 1]),
        "frame {seq}: the payload does not start with an Annex-B start code"
    );
    let nals = nal_types(payload);
    if object.flags.keyframe {
        ensure!(
            nals.contains(&7) && nals.contains(&8) && nals.contains(&5),
            "key frame {seq} lacks SPS, PPS or IDR: NAL types {nals:?}"
        );
    } else {
        ensure!(
            !nals.contains(&5) && nals.contains(&1),
            "delta frame {seq}: NAL types {nals:?}"
        );
    }

    let got = object.camera;
    let expected = expected_camera(seq);
    let moved = (got.pose.translation - expected.pose.translation).norm();
    let turned = got
        .pose
        .rotation
        .angle_to(&expected.pose.rotation)
        .to_degrees();
    ensure!(
        moved < 0.001 && turned < 0.1,
        "frame {seq}: pose off the head path by {:.2} mm and {turned:.3}°: got {:?}, expected {:?}",
        moved * 1000.0,
        got.pose,
        expected.pose
    );
    let (k, e) = (got.intrinsics, expected.intrinsics);
    ensure!(
        (k.width, k.height) == (WIDTH, HEIGHT)
            && (k.fx - e.fx).abs() < 0.01
            && (k.fy - e.fy).abs() < 0.01
            && (k.cx - e.cx).abs() < 0.01
            && (k.cy - e.cy).abs() < 0.01,
        "frame {seq}: intrinsics {k:?}, expected {e:?}"
    );
    Ok(())
}

/// A key frame first, then consecutive frames in order, each a well-formed access unit with
/// the head path's camera, captured between `since` and now.
fn check_stream(frames: &[Received], since: Micros) -> Result<()> {
    let first = frames.first().context("no frames")?;
    ensure!(
        first.object.flags.keyframe,
        "the first frame the agent saw ({}) is not a key frame",
        first.object.frame.0
    );
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        ensure!(
            b.object.frame.0 == a.object.frame.0 + 1,
            "frame {} followed frame {}",
            b.object.frame.0,
            a.object.frame.0
        );
        ensure!(
            b.header.group.0 >= a.header.group.0,
            "group {} after group {}",
            b.header.group.0,
            a.header.group.0
        );
        ensure!(
            b.object.capture >= a.object.capture,
            "frame {} was captured before frame {}",
            b.object.frame.0,
            a.object.frame.0
        );
    }
    let now = Micros::now();
    for received in frames {
        let capture = received.object.capture;
        ensure!(
            since <= capture && capture <= now,
            "frame {}: capture time {capture:?} is not while the test ran",
            received.object.frame.0
        );
        check_frame(received)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sees_the_simulators_view_with_the_head_paths_poses() -> Result<()> {
    let relay = Relay::start().await?;
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let started = Micros::now();
    let mut wearable = relay.wearable(&relay.wearable_token, &["--frames", &FRAMES.to_string()])?;
    let session = relay.session(&mut wearable, deadline).await?;
    let (_agent, mut watcher) = relay.watch(session).await?;
    let frames = wearable
        .receive(&mut watcher, deadline, |frames| {
            frames
                .last()
                .is_some_and(|r| r.object.frame.0 + 1 >= FRAMES)
        })
        .await?;

    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let status = tokio::time::timeout(left, wearable.child.wait())
        .await
        .context("farsight-wearable did not exit after its last frame")??;
    let log = wearable.log();
    ensure!(
        status.success(),
        "farsight-wearable failed ({status}); log:\n{log}"
    );
    ensure!(
        log.contains(&format!("publishing session {session}")),
        "the wearable did not say which session it publishes; log:\n{log}"
    );
    check_stream(&frames, started)?;
    // The head really moved while it was filmed: the path is not checked at a standstill.
    let travelled = (frames[0].object.camera.pose.translation
        - frames[frames.len() - 1].object.camera.pose.translation)
        .norm();
    ensure!(
        frames.len() < 10 || travelled > 0.05,
        "the head moved {travelled:.3} m over {} frames",
        frames.len()
    );
    relay.running.shutdown().await;
    Ok(())
}

/// How soon after a relay restart an agent sees the wearable's frames again.
const RECONNECT_LIMIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wearable_resumes_its_session_when_the_relay_restarts() -> Result<()> {
    let relay = Relay::start().await?;
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let started = Micros::now();
    // No --frames: it publishes until killed.
    let mut wearable = relay.wearable(&relay.wearable_token, &[])?;
    let session = relay.session(&mut wearable, deadline).await?;
    let (agent, mut watcher) = relay.watch(session).await?;
    let before = wearable
        .receive(&mut watcher, deadline, |frames| frames.len() >= 5)
        .await?;
    check_stream(&before, started)?;
    let last = before.last().context("no frames")?;
    let (last_frame, last_group) = (last.object.frame.0, last.header.group.0);
    drop((agent, watcher));

    let relay = relay.restart().await?;
    let restarted = tokio::time::Instant::now();
    // The agent may ask before the wearable is back; it watches once the session is live.
    loop {
        let (_agent, mut watcher) = relay.watch(session).await?;
        let first = tokio::time::timeout(Duration::from_secs(2), watcher.next_object()).await;
        if let Ok(Some(first)) = first {
            let mut frames = vec![first];
            frames.extend(
                wearable
                    .receive(&mut watcher, deadline, |frames| frames.len() >= 5)
                    .await?,
            );
            check_stream(&frames, started)?;
            let first = &frames[0];
            ensure!(
                first.header.session == session,
                "frames for session {} after resuming {session}",
                first.header.session
            );
            ensure!(
                first.object.frame.0 > last_frame && first.header.group.0 > last_group,
                "after the restart frame {} of group {} came after frame {last_frame} of \
                 group {last_group}",
                first.object.frame.0,
                first.header.group.0
            );
            let back = restarted.elapsed();
            ensure!(
                back < RECONNECT_LIMIT,
                "frames came back {back:?} after the restart (limit {RECONNECT_LIMIT:?})"
            );
            break;
        }
        wearable.ensure_running()?;
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no frames after the restart; log:\n{}",
            wearable.log()
        );
    }
    wearable.stop_still_running().await?;
    relay.running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_ends_the_wearable_with_the_reason() -> Result<()> {
    let relay = Relay::start().await?;
    let mut wearable = relay.wearable("not-a-token", &["--frames", "5"])?;
    let status = tokio::time::timeout(RUN_LIMIT, wearable.child.wait())
        .await
        .context("farsight-wearable kept running with a refused token")??;
    let log = wearable.log();
    ensure!(!status.success(), "a refused token succeeded; log:\n{log}");
    ensure!(log.contains("Unauthorized"), "log:\n{log}");
    relay.running.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_streams_its_picture_and_its_marks_lie_on_the_median_plane() -> Result<()> {
    let relay = Relay::start().await?;
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let mut wearable = relay.spawn_wearable(
        &relay.wearable_token,
        (WIDTH, HEIGHT),
        &["--camera", "test", "--headless"],
        None,
    )?;
    let session = relay.session(&mut wearable, deadline).await?;
    let (mut agent, mut watcher) = relay.watch(session).await?;
    let frames = wearable
        .receive(&mut watcher, deadline, |frames| frames.len() >= 10)
        .await?;
    let first = &frames[0].object;
    ensure!(first.flags.keyframe, "the first frame is not a key frame");
    let nals = nal_types(&first.payload);
    ensure!(
        nals.contains(&7) && nals.contains(&8) && nals.contains(&5),
        "the key frame lacks SPS, PPS or IDR: NAL types {nals:?}"
    );
    // A camera with no tracking: every frame has the fixed pose and the assumed lens.
    let fixed = fixed_camera_model(UVec2::new(WIDTH, HEIGHT));
    for pair in frames.windows(2) {
        let (a, b) = (&pair[0].object, &pair[1].object);
        ensure!(
            b.frame.0 == a.frame.0 + 1,
            "frame {} after {}",
            b.frame.0,
            a.frame.0
        );
        // The wire carries the lens in f32.
        let (k, f) = (b.camera.intrinsics, fixed.intrinsics);
        ensure!(
            b.camera.pose == fixed.pose
                && (k.width, k.height) == (f.width, f.height)
                && (k.fx - f.fx).abs() < 0.01
                && (k.cx - f.cx).abs() < 0.01,
            "frame {}: camera {:?}, expected {fixed:?}",
            b.frame.0,
            b.camera
        );
    }

    agent
        .send(&ControlMessage::Annotate(Annotate {
            session,
            id: AnnotationId(1),
            author: ParticipantId(0),
            kind: AnnotationKind::Arrow,
            frame: first.frame,
            points: vec![[0.4, 0.4], [0.6, 0.5]],
            style: Style::default(),
            text: String::new(),
        }))
        .await?;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let depth = agent
        .wait_for(left, |m| match m {
            ControlMessage::AnchorResolved { depth, .. } => Some(*depth),
            _ => None,
        })
        .await
        .with_context(|| format!("no AnchorResolved; log:\n{}", wearable.log()))?;
    ensure!(
        depth == DepthSource::MedianPlane,
        "a mark on a camera with no depth was anchored by {depth:?}"
    );
    wearable.child.kill().await?;
    relay.running.shutdown().await;
    Ok(())
}
