//! The relay over real QUIC on loopback: fan-out, late joiners, slow watchers, annotations.

mod support;

use std::time::Duration;

use farsight_client::{Connection, GroupEnd, WatchEvent, Watcher};
use farsight_protocol::control::DepthSource;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, ControlMessage, FrameSeq, Micros, ParticipantId,
    PoseDatagram, Role, SessionId, Style,
};
use support::{TIMEOUT, TestServer, frame, pose_for};

const GROUP: u64 = 10;

async fn next_object(w: &mut Watcher) -> farsight_client::Received {
    tokio::time::timeout(TIMEOUT, w.next_object())
        .await
        .expect("an object in time")
        .expect("connection open")
}

async fn joined_agent(server: &TestServer, session: SessionId, name: &str) -> Connection {
    let mut agent = server.connect(Role::Agent, name).await;
    agent.join(session).await.expect("joins");
    agent
}

/// Waits until the session's hub lists `n` watchers, so media sent next reaches them all.
async fn until_watchers(server: &TestServer, session: SessionId, n: usize) {
    let relay = &server.running.shared.relay;
    support::eventually("watchers to join", || {
        relay
            .session(session)
            .is_some_and(|s| s.watchers.len() == n)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchers_receive_every_frame_in_order_with_pose_and_timing() {
    let server = TestServer::start().await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let agents = [
        joined_agent(&server, session, "alice").await,
        joined_agent(&server, session, "bob").await,
    ];
    let mut watchers: Vec<Watcher> = agents.iter().map(|a| a.watcher()).collect();
    until_watchers(&server, session, 2).await;

    let mut publisher = wearable.publisher();
    let sent: Vec<_> = (0..3 * GROUP)
        .map(|i| frame(i, i % GROUP == 0, 3000))
        .collect();
    for object in &sent {
        publisher.send(object).await.expect("sent");
    }
    publisher.finish();

    for watcher in &mut watchers {
        let mut got = Vec::new();
        while got.len() < sent.len() {
            got.push(next_object(watcher).await);
        }
        got.sort_by_key(|r| (r.header.group, r.at));
        for (r, s) in got.iter().zip(&sent) {
            assert_eq!(r.header.session, session);
            assert_eq!(
                r.header.group.0,
                s.frame.0 / GROUP,
                "frame {} in its group",
                s.frame
            );
            assert_eq!(r.object.frame, s.frame, "frames in order");
            assert_eq!(
                r.object.capture, s.capture,
                "frame {} keeps its capture time",
                s.frame
            );
            // Pose and intrinsics travel as f32: compare what went on the wire.
            assert!(
                r.object.to_bytes() == s.to_bytes(),
                "frame {} arrives intact",
                s.frame
            );
            let moved = r.object.camera.pose.translation - pose_for(s.frame.0).translation;
            assert!(moved.norm() < 1e-6, "frame {} keeps its pose", s.frame);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_starts_on_the_current_key_frame() {
    let server = TestServer::start().await;
    let wearable = server.connect(Role::Wearable, "glasses").await;
    let mut publisher = wearable.publisher();
    for i in 0..GROUP + 4 {
        publisher
            .send(&frame(i, i % GROUP == 0, 500))
            .await
            .expect("sent");
    }
    // The relay has the second group's key frame and three deltas; a watcher joins now.
    support::eventually("the second group to arrive", || {
        server.running.shared.relay.stats().objects_received == GROUP + 4
    })
    .await;
    let agent = joined_agent(&server, wearable.session, "late").await;
    let mut watcher = agent.watcher();
    let first = next_object(&mut watcher).await;
    assert!(first.object.flags.keyframe, "first object is a key frame");
    assert_eq!(first.object.frame, FrameSeq(GROUP));
    for expected in GROUP + 1..GROUP + 4 {
        assert_eq!(
            next_object(&mut watcher).await.object.frame,
            FrameSeq(expected)
        );
    }
    publisher
        .send(&frame(GROUP + 4, false, 500))
        .await
        .expect("sent");
    assert_eq!(
        next_object(&mut watcher).await.object.frame,
        FrameSeq(GROUP + 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_a_session_without_a_picture_asks_the_wearable_for_a_key_frame() {
    let server = TestServer::start().await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    let _agent = joined_agent(&server, wearable.session, "alice").await;
    let session = wearable.session;
    wearable
        .wait_for(TIMEOUT, |m| {
            matches!(m, ControlMessage::KeyframeRequest { session: s } if *s == session)
                .then_some(())
        })
        .await
        .expect("KeyframeRequest reaches the wearable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_watcher_loses_old_groups_while_a_fast_one_loses_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = farsight_server::ServeConfig::ephemeral(dir.path());
    config.latency_budget = Duration::from_millis(200);
    let server = TestServer::start_in(dir, config).await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;

    let fast = joined_agent(&server, session, "fast").await;
    let slow_token = server.token(Role::Agent, "slow").await;
    let mut slow_options = server.options(Role::Agent, &slow_token);
    slow_options.receive_window = Some(32 * 1024);
    let mut slow = farsight_client::connect(&slow_options)
        .await
        .expect("connects");
    slow.join(session).await.expect("joins");
    let mut fast_watch = fast.watcher();
    // 2 Mbit/s published, 200 kbit/s taken.
    let mut slow_watch = slow.throttled_watcher(25_000);
    until_watchers(&server, session, 2).await;

    // 3 s of 8 kB frames at 30 fps, a group every 10 frames.
    let frames = 90;
    let mut publisher = wearable.publisher();
    for i in 0..frames {
        publisher
            .send(&frame(i, i % GROUP == 0, 8_000))
            .await
            .expect("sent");
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    publisher.finish();

    let groups = frames / GROUP;
    let (mut fast_complete, mut fast_objects) = (0, 0);
    while fast_complete < groups {
        match tokio::time::timeout(TIMEOUT, fast_watch.next())
            .await
            .expect("in time")
        {
            Some(WatchEvent::Object(_)) => fast_objects += 1,
            Some(WatchEvent::End(GroupEnd::Complete { .. })) => fast_complete += 1,
            other => panic!("fast watcher saw {other:?}"),
        }
    }
    assert_eq!(fast_objects, frames, "the fast watcher got every frame");

    let (mut slow_dropped, mut slow_groups, mut newest_seen) = (0, 0, 0);
    while slow_groups < groups {
        match tokio::time::timeout(TIMEOUT, slow_watch.next())
            .await
            .expect("in time")
        {
            Some(WatchEvent::Object(r)) => newest_seen = newest_seen.max(r.header.group.0),
            Some(WatchEvent::End(GroupEnd::Dropped { .. })) => {
                slow_dropped += 1;
                slow_groups += 1;
            }
            Some(WatchEvent::End(_)) => slow_groups += 1,
            None => panic!("slow watcher's connection ended"),
        }
    }
    assert!(
        slow_dropped >= 2,
        "the slow watcher lost old groups ({slow_dropped} dropped)"
    );
    assert_eq!(
        newest_seen,
        groups - 1,
        "the slow watcher still reached the newest group"
    );
    assert!(server.running.shared.relay.stats().groups_dropped >= slow_dropped);

    // Its drops made the relay ask the wearable for less.
    let hint = wearable
        .wait_for(TIMEOUT, |m| match m {
            ControlMessage::BitrateHint {
                bits_per_second, ..
            } => Some(*bits_per_second),
            _ => None,
        })
        .await
        .expect("a BitrateHint");
    assert!(hint < 2_000_000, "hint {hint} is below the published rate");
}

fn arrow(session: SessionId, id: u64) -> Annotate {
    Annotate {
        session,
        id: AnnotationId(id),
        author: ParticipantId(0),
        kind: AnnotationKind::Arrow,
        frame: FrameSeq(42),
        points: vec![[0.25, 0.5], [0.4, 0.55]],
        style: Style::default(),
        text: "this knob".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_reaches_the_wearable_and_its_anchor_every_agent() {
    let server = TestServer::start().await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let mut alice = joined_agent(&server, session, "alice").await;
    let mut bob = joined_agent(&server, session, "bob").await;

    alice
        .send(&ControlMessage::Annotate(arrow(session, 7)))
        .await
        .expect("sent");
    let got = wearable
        .wait_for(TIMEOUT, |m| match m {
            ControlMessage::Annotate(a) => Some(a.clone()),
            _ => None,
        })
        .await
        .expect("the wearable gets the mark");
    assert_eq!(
        got,
        Annotate {
            author: alice.participant,
            ..arrow(session, 7)
        }
    );

    let anchor = ControlMessage::AnchorResolved {
        session,
        id: AnnotationId(7),
        depth: DepthSource::Measured,
        points: vec![[0.01, -0.02, 1.0], [0.05, -0.01, 1.02]],
    };
    wearable.send(&anchor).await.expect("sent");
    for agent in [&mut alice, &mut bob] {
        let got = agent
            .wait_for(TIMEOUT, |m| {
                matches!(m, ControlMessage::AnchorResolved { .. }).then(|| m.clone())
            })
            .await
            .expect("every agent gets the anchor");
        assert_eq!(got, anchor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_keyframe_requests_and_poses_flow_between_agent_and_wearable() {
    let server = TestServer::start().await;
    let mut wearable = server.connect(Role::Wearable, "glasses").await;
    let session = wearable.session;
    let agent = joined_agent(&server, session, "alice").await;
    until_watchers(&server, session, 1).await;

    agent
        .send(&ControlMessage::Freeze {
            session,
            frame: FrameSeq(3),
        })
        .await
        .expect("sent");
    let frozen = wearable
        .wait_for(TIMEOUT, |m| match m {
            ControlMessage::Freeze { frame, .. } => Some(*frame),
            _ => None,
        })
        .await
        .expect("freeze reaches the wearable");
    assert_eq!(frozen, FrameSeq(3));

    let pose = PoseDatagram {
        session,
        at: Micros(77),
        pose: pose_for(5),
    };
    wearable
        .publisher()
        .send_pose(&pose)
        .expect("datagram sent");
    let datagram = tokio::time::timeout(TIMEOUT, agent.quic().read_datagram())
        .await
        .expect("in time")
        .expect("datagram");
    assert_eq!(
        PoseDatagram::decode(&datagram).expect("valid").at,
        Micros(77)
    );
}

/// Switching between sessions on one connection, as the console does: join A, leave it for
/// B, then come back to A. The same participant joins A twice and sees its picture again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_joins_a_then_b_then_a_again() {
    let server = TestServer::start().await;
    let a = server.connect(Role::Wearable, "glasses-a").await;
    let b = server.connect(Role::Wearable, "glasses-b").await;
    let mut agent = server.connect(Role::Agent, "switcher").await;
    for session in [a.session, b.session] {
        agent.join(session).await.expect("joins");
        agent
            .send(&ControlMessage::Leave { session })
            .await
            .expect("leaves");
        until_watchers(&server, session, 0).await;
    }
    agent.join(a.session).await.expect("joins A again");
    until_watchers(&server, a.session, 1).await;
    let mut watcher = agent.watcher();
    a.publisher()
        .send(&frame(0, true, 100))
        .await
        .expect("sent");
    assert_eq!(next_object(&mut watcher).await.object.frame, FrameSeq(0));
    // The wearable and the agent: one row each, the agent's reopened.
    let store = &server.running.shared.store;
    assert_eq!(store.participant_count(a.session).await.expect("db"), 2);
}
