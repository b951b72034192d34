//! The relay core driven by hand: no sockets, no clock, every input and output visible.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, CameraModel, ControlMessage, ErrorCode, FrameSeq,
    GroupSeq, Intrinsics, Micros, Object, ObjectFlags, ParticipantId, Pose, Role, SessionId,
    StreamHeader, Style, TrackId,
};

use crate::*;

const SESSION: SessionId = SessionId(77);
const MS: Duration = Duration::from_millis(1);

struct Harness {
    relay: Relay,
    now: Instant,
    next_member: u64,
}

impl Harness {
    fn new() -> Self {
        Self {
            relay: Relay::new(Config::default()),
            now: Instant::now(),
            next_member: 1,
        }
    }

    fn input(&mut self, input: Input) -> Vec<Output> {
        self.relay.handle(self.now, input);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.relay.poll_output()).collect()
    }

    fn advance(&mut self, by: Duration) -> Vec<Output> {
        self.now += by;
        self.relay.handle_timeout(self.now);
        self.drain()
    }

    fn hello(&mut self, role: Role, resume: SessionId) -> (MemberId, Vec<Output>) {
        self.hello_limited(role, resume, None)
    }

    /// A `Hello` whose token may be limited to one session.
    fn hello_limited(
        &mut self,
        role: Role,
        resume: SessionId,
        session: Option<SessionId>,
    ) -> (MemberId, Vec<Output>) {
        let member = ParticipantId(self.next_member);
        self.next_member += 1;
        self.input(Input::Connected {
            member,
            browser: false,
        });
        let token = Token {
            id: TokenId(if role == Role::Wearable { 1 } else { 2 }),
            role: Some(role),
            name: format!("{}-{}", role.as_str(), member),
            session,
        };
        let out = self.input(Input::Hello {
            member,
            version: 1,
            role,
            resume,
            token: Ok(token),
        });
        (member, out)
    }

    /// A wearable publishing [`SESSION`], loaded from the store with no marks.
    fn wearable(&mut self) -> MemberId {
        let (member, out) = self.hello(Role::Wearable, SessionId(0));
        assert!(out.iter().any(|o| matches!(o, Output::Load { .. })));
        let out = self.input(Input::Loaded {
            member,
            session: Some(stored()),
        });
        assert!(
            sent(&out, member).iter().any(
                |m| matches!(m, ControlMessage::Welcome { session, .. } if *session == SESSION)
            )
        );
        member
    }

    fn watcher(&mut self) -> MemberId {
        self.hello(Role::Agent, SessionId(0)).0
    }

    /// A watcher that has joined [`SESSION`]; returns its member id and what joining sent.
    fn joined(&mut self) -> (MemberId, Vec<Output>) {
        let member = self.watcher();
        let out = self.join(member);
        (member, out)
    }

    fn join(&mut self, member: MemberId) -> Vec<Output> {
        let mut out = self.control(member, ControlMessage::Join { session: SESSION });
        if out.iter().any(|o| matches!(o, Output::Load { .. })) {
            out = self.input(Input::Loaded {
                member,
                session: Some(stored()),
            });
        }
        out
    }

    fn control(&mut self, member: MemberId, msg: ControlMessage) -> Vec<Output> {
        self.input(Input::Control { member, msg })
    }

    /// The wearable sends a whole object on stream `group` (one stream per group).
    fn object(&mut self, wearable: MemberId, group: u64, frame: u64, key: bool) -> Vec<Output> {
        let mut data = BytesMut::new();
        if key {
            header(group).encode(&mut data);
        }
        object(frame, key).encode(&mut data);
        self.input(Input::StreamData {
            member: wearable,
            stream: group,
            data: data.freeze(),
        })
    }

    /// Acknowledges every media write and control message in `out`, as a fast transport.
    fn written(&mut self, out: &[Output]) -> Vec<Output> {
        let mut next = Vec::new();
        for o in out {
            let input = match o {
                Output::Media {
                    member,
                    op: MediaOp::Write { group, object },
                } => Input::ObjectWritten {
                    member: *member,
                    group: *group,
                    bytes: object.len(),
                },
                Output::Control { member, .. } => Input::ControlWritten {
                    member: *member,
                    count: 1,
                },
                _ => continue,
            };
            next.extend(self.input(input));
        }
        next
    }
}

fn stored() -> StoredSession {
    StoredSession {
        id: SESSION,
        name: "bench".into(),
        owner: TokenId(1),
        ended: false,
        marks: Vec::new(),
    }
}

fn header(group: u64) -> StreamHeader {
    StreamHeader {
        session: SESSION,
        track: TrackId(0),
        group: GroupSeq(group),
    }
}

fn object(frame: u64, key: bool) -> Object {
    Object {
        frame: FrameSeq(frame),
        capture: Micros(frame * 33_000),
        flags: ObjectFlags { keyframe: key },
        camera: CameraModel {
            pose: Pose::IDENTITY,
            intrinsics: Intrinsics::from_hfov(640, 360, 1.2),
        },
        payload: Bytes::from(vec![frame as u8; 100]),
    }
}

/// The control messages `out` sends to `member`.
fn sent(out: &[Output], member: MemberId) -> Vec<ControlMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Control { member: m, msg } if *m == member => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn errors(out: &[Output], member: MemberId) -> Vec<ErrorCode> {
    sent(out, member)
        .into_iter()
        .filter_map(|m| match m {
            ControlMessage::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect()
}

fn closed(out: &[Output], member: MemberId) -> Option<ErrorCode> {
    out.iter().find_map(|o| match o {
        Output::Close {
            member: m, code, ..
        } if *m == member => Some(*code),
        _ => None,
    })
}

/// The media steps `out` gives `member`.
fn media(out: &[Output], member: MemberId) -> Vec<MediaOp> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media { member: m, op } if *m == member => Some(op.clone()),
            _ => None,
        })
        .collect()
}

fn frames(ops: &[MediaOp]) -> Vec<u64> {
    ops.iter()
        .filter_map(|op| match op {
            MediaOp::Write { object, .. } => {
                let mut head = [0u8; farsight_protocol::media::OBJECT_HEADER_LEN];
                head.copy_from_slice(&object[..farsight_protocol::media::OBJECT_HEADER_LEN]);
                Some(
                    Object::decode_header(&head)
                        .expect("valid object")
                        .0
                        .frame
                        .0,
                )
            }
            _ => None,
        })
        .collect()
}

fn annotate(id: u64) -> ControlMessage {
    ControlMessage::Annotate(Annotate {
        session: SESSION,
        id: AnnotationId(id),
        author: ParticipantId(0),
        kind: AnnotationKind::Arrow,
        frame: FrameSeq(0),
        points: vec![[0.1, 0.1], [0.5, 0.5]],
        style: Style {
            rgba: 0xff0000ff,
            width: 4.0,
        },
        text: String::new(),
    })
}

#[test]
fn a_late_joiner_starts_at_the_current_key_frame() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    h.object(wearable, 1, 0, true);
    h.object(wearable, 1, 1, false);
    h.object(wearable, 2, 2, true);
    h.object(wearable, 2, 3, false);

    let (late, out) = h.joined();
    let ops = media(&out, late);
    assert_eq!(
        ops.first(),
        Some(&MediaOp::Open {
            group: header(2),
            priority: 0
        }),
        "the current group, not the older one"
    );
    assert_eq!(frames(&ops), [2, 3], "from its key frame on");
    let out = h.object(wearable, 2, 4, false);
    assert_eq!(frames(&media(&out, late)), [4]);
}

#[test]
fn without_a_picture_a_joiner_asks_the_wearable_for_a_key_frame() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (_, out) = h.joined();
    assert!(sent(&out, wearable).contains(&ControlMessage::KeyframeRequest { session: SESSION }));
}

#[test]
fn a_throttled_watcher_loses_old_groups_while_a_fast_one_loses_none() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (fast, _) = h.joined();
    let (slow, _) = h.joined();
    let mut fast_frames = Vec::new();
    let mut slow_ops = Vec::new();
    for group in 0..4u64 {
        for i in 0..10u64 {
            let frame = group * 10 + i;
            let mut out = h.object(wearable, group, frame, i == 0);
            out.extend(h.advance(100 * MS));
            // The fast watcher's transport writes everything at once; the slow one's never.
            fast_frames.extend(frames(&media(&out, fast)));
            h.written(&media_only(&out, fast));
            slow_ops.extend(media(&out, slow));
        }
        h.input(Input::StreamEnd {
            member: wearable,
            stream: group,
        });
    }
    assert_eq!(
        fast_frames,
        (0..40).collect::<Vec<_>>(),
        "the fast watcher lost nothing"
    );
    let resets: Vec<_> = slow_ops
        .iter()
        .filter_map(|op| match op {
            MediaOp::Reset { group } => Some(group.group.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        resets,
        [0, 1, 2],
        "each group dropped once a newer one came"
    );
    assert_eq!(h.relay.stats().groups_dropped, 3);
    // A dropped group sends nothing more.
    for (i, op) in slow_ops.iter().enumerate() {
        if let MediaOp::Reset { group } = op {
            assert!(
                !slow_ops[i..]
                    .iter()
                    .any(|later| matches!(later, MediaOp::Write { group: g, .. } if g == group))
            );
        }
    }
}

fn media_only(out: &[Output], member: MemberId) -> Vec<Output> {
    out.iter()
        .filter(|o| matches!(o, Output::Media { member: m, .. } if *m == member))
        .cloned()
        .collect()
}

#[test]
fn a_dropped_group_asks_the_wearable_for_a_lower_bit_rate() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (_slow, _) = h.joined();
    h.object(wearable, 0, 0, true);
    h.advance(600 * MS);
    let out = h.object(wearable, 1, 1, true);
    assert!(
        sent(&out, wearable)
            .iter()
            .any(|m| matches!(m, ControlMessage::BitrateHint { bits_per_second, .. } if *bits_per_second == MIN_BITRATE))
    );
}

#[test]
fn leave_and_rejoin_of_the_same_participant() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (agent, out) = h.joined();
    assert!(matches!(
        sent(&out, wearable)[0],
        ControlMessage::Presence { present: true, .. }
    ));
    h.object(wearable, 1, 0, true);

    let out = h.control(agent, ControlMessage::Leave { session: SESSION });
    assert!(matches!(
        sent(&out, wearable)[0],
        ControlMessage::Presence { present: false, .. }
    ));
    assert!(out.contains(&Output::Persist(Persist::Left {
        session: SESSION,
        participant: agent
    })));
    assert!(media(&h.object(wearable, 1, 1, false), agent).is_empty());
    let refused = h.control(agent, annotate(1));
    assert_eq!(errors(&refused, agent), [ErrorCode::NotJoined]);

    let out = h.join(agent);
    assert!(matches!(
        sent(&out, agent)[0],
        ControlMessage::Joined { .. }
    ));
    assert!(matches!(
        sent(&out, wearable)[0],
        ControlMessage::Presence { present: true, .. }
    ));
    assert_eq!(
        frames(&media(&out, agent)),
        [0, 1],
        "the current group again"
    );
    assert!(errors(&h.control(agent, annotate(1)), agent).is_empty());
}

#[test]
fn joining_a_session_again_answers_joined_and_changes_nothing() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (agent, _) = h.joined();
    h.control(agent, annotate(5));
    let out = h.join(agent);
    let msgs = sent(&out, agent);
    assert!(
        matches!(&msgs[0], ControlMessage::Joined { participants, .. } if participants.len() == 1)
    );
    assert!(matches!(&msgs[1], ControlMessage::Annotate(a) if a.id == AnnotationId(5)));
    assert!(sent(&out, wearable).is_empty(), "no second Presence");
    assert_eq!(h.relay.session(SESSION).expect("live").watchers.len(), 1);
}

#[test]
fn fifty_watchers_joining_at_once_lose_no_control_message() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let mut all = Vec::new();
    let mut members = Vec::new();
    for _ in 0..50 {
        let (m, out) = h.joined();
        members.push(m);
        all.extend(out);
    }
    // Nobody's transport has written anything yet: all of it is still queued.
    for (i, &m) in members.iter().enumerate() {
        let presences = sent(&all, m)
            .iter()
            .filter(|msg| matches!(msg, ControlMessage::Presence { present: true, .. }))
            .count();
        assert_eq!(presences, 49 - i, "watcher {i} hears of everyone after it");
    }
    let to_wearable = sent(&all, wearable)
        .iter()
        .filter(|msg| matches!(msg, ControlMessage::Presence { present: true, .. }))
        .count();
    assert_eq!(to_wearable, 50);
    assert!(all.iter().all(|o| !matches!(o, Output::Close { .. })));
    assert_eq!(h.relay.stats().members_too_slow, 0);
}

#[test]
fn a_member_that_reads_no_control_messages_is_removed_and_counted() {
    let mut h = Harness::new();
    h.relay = Relay::new(Config {
        control_backlog: 10,
        ..Config::default()
    });
    let wearable = h.wearable();
    let (agent, first) = h.joined();
    h.written(&first);
    let (deaf, _) = h.joined();
    let mut out = Vec::new();
    for id in 0..20 {
        let o = h.control(agent, annotate(id));
        h.written(
            &o.iter()
                .filter(|o| matches!(o, Output::Control { member, .. } if *member == wearable))
                .cloned()
                .collect::<Vec<_>>(),
        );
        out.extend(o);
    }
    assert_eq!(closed(&out, deaf), Some(ErrorCode::TooSlow));
    assert_eq!(h.relay.stats().members_too_slow, 1);
    assert_eq!(h.relay.session(SESSION).expect("live").watchers.len(), 1);
    assert!(
        closed(&out, wearable).is_none(),
        "a wearable that keeps up stays"
    );
}

#[test]
fn no_hello_within_the_limit_closes_with_unexpected_message() {
    let mut h = Harness::new();
    let member = ParticipantId(9);
    h.input(Input::Connected {
        member,
        browser: false,
    });
    assert!(h.advance(9_999 * MS).is_empty());
    let out = h.advance(MS);
    assert_eq!(closed(&out, member), Some(ErrorCode::UnexpectedMessage));
}

#[test]
fn a_hello_in_time_stops_the_handshake_clock() {
    let mut h = Harness::new();
    let (agent, _) = h.hello(Role::Agent, SessionId(0));
    assert!(closed(&h.advance(Duration::from_secs(20)), agent).is_none());
}

#[test]
fn handshake_refusals_are_fatal_with_their_codes() {
    let mut h = Harness::new();
    let member = ParticipantId(1);
    h.input(Input::Connected {
        member,
        browser: false,
    });
    let out = h.control(member, ControlMessage::Join { session: SESSION });
    assert_eq!(closed(&out, member), Some(ErrorCode::UnexpectedMessage));

    let (watcher, out) = h.hello(Role::Agent, SESSION);
    assert_eq!(errors(&out, watcher), [ErrorCode::Malformed]);
    assert_eq!(closed(&out, watcher), Some(ErrorCode::Malformed));

    for (version, token, code) in [
        (2, Some(Role::Agent), ErrorCode::UnsupportedVersion),
        (1, None, ErrorCode::Unauthorized),
        (1, Some(Role::Wearable), ErrorCode::WrongRole),
    ] {
        let member = ParticipantId(100 + version as u64 + token.map_or(0, |r| r as u64));
        h.input(Input::Connected {
            member,
            browser: false,
        });
        let out = h.input(Input::Hello {
            member,
            version,
            role: Role::Agent,
            resume: SessionId(0),
            token: token
                .map(|role| Token {
                    id: TokenId(5),
                    role: Some(role),
                    name: "t".into(),
                    session: None,
                })
                .ok_or(TokenRefused::Unknown),
        });
        assert_eq!(closed(&out, member), Some(code), "{code:?}");
    }
}

#[test]
fn a_wearable_resumes_only_its_own_existing_session() {
    let mut h = Harness::new();
    let (member, _) = h.hello(Role::Wearable, SESSION);
    let out = h.input(Input::Loaded {
        member,
        session: None,
    });
    assert_eq!(closed(&out, member), Some(ErrorCode::NoSuchSession));

    let (member, _) = h.hello(Role::Wearable, SESSION);
    let mut theirs = stored();
    theirs.owner = TokenId(99);
    let out = h.input(Input::Loaded {
        member,
        session: Some(theirs),
    });
    assert_eq!(closed(&out, member), Some(ErrorCode::NotJoined));
}

#[test]
fn a_token_limited_to_one_session_joins_only_that_one() {
    let mut h = Harness::new();
    h.wearable();
    let (member, _) = h.hello_limited(Role::Agent, SessionId(0), Some(SESSION));
    let other = SessionId(SESSION.0 + 1);
    let out = h.control(member, ControlMessage::Join { session: other });
    assert_eq!(errors(&out, member), vec![ErrorCode::Unauthorized]);
    assert!(
        sent(&out, member).iter().any(
            |m| matches!(m, ControlMessage::Error { message, .. } if message.contains("limited to session 77"))
        ),
        "{out:?}"
    );
    assert_eq!(closed(&out, member), None, "the connection stays open");
    let out = h.join(member);
    assert!(
        sent(&out, member)
            .iter()
            .any(|m| matches!(m, ControlMessage::Joined { session, .. } if *session == SESSION)),
        "{out:?}"
    );
}

#[test]
fn a_wearable_token_limited_to_one_session_may_only_resume_it() {
    let mut h = Harness::new();
    let (member, out) = h.hello_limited(Role::Wearable, SessionId(0), Some(SESSION));
    assert_eq!(closed(&out, member), Some(ErrorCode::Unauthorized));
    let other = SessionId(SESSION.0 + 1);
    let (member, out) = h.hello_limited(Role::Wearable, other, Some(SESSION));
    assert_eq!(closed(&out, member), Some(ErrorCode::Unauthorized));
    let (_, out) = h.hello_limited(Role::Wearable, SESSION, Some(SESSION));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Load { load: Load::Session(s), .. } if *s == SESSION)),
        "{out:?}"
    );
}

#[test]
fn ending_a_session_tells_everyone_else_and_lets_no_one_back() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (ender, _) = h.joined();
    let (other, _) = h.joined();
    let out = h.control(ender, ControlMessage::End { session: SESSION });
    let ended = out
        .iter()
        .position(|o| matches!(o, Output::Persist(Persist::Ended { session, by }) if *session == SESSION && *by == ender))
        .expect("stored as ended");
    let told: Vec<MemberId> = out
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Output::Control {
                member,
                msg: ControlMessage::End { .. },
            } => {
                assert!(i > ended, "stored before it is told");
                Some(*member)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        told,
        vec![wearable, other],
        "everyone else, the wearable first"
    );
    assert!(
        !out.iter().any(|o| matches!(
            o,
            Output::Control {
                msg: ControlMessage::Presence { .. },
                ..
            }
        )),
        "no one is said to leave one by one: {out:?}"
    );
    let out = h.control(other, ControlMessage::Join { session: SESSION });
    assert_eq!(errors(&out, other), vec![ErrorCode::NoSuchSession]);
    // The wearable reconnecting finds the session ended in the store.
    let (again, out) = h.hello(Role::Wearable, SESSION);
    assert!(out.iter().any(|o| matches!(o, Output::Load { .. })));
    let out = h.input(Input::Loaded {
        member: again,
        session: Some(StoredSession {
            ended: true,
            ..stored()
        }),
    });
    assert_eq!(closed(&out, again), Some(ErrorCode::NoSuchSession));
}

#[test]
fn a_newer_connection_of_the_wearable_replaces_the_older() {
    let mut h = Harness::new();
    let old = h.wearable();
    let (agent, _) = h.joined();
    let new = h.wearable();
    let out = h.input(Input::Closed { member: old });
    assert!(out.is_empty(), "the old one was already replaced");
    let view = h.relay.session(SESSION).expect("live");
    assert_eq!(view.publisher.map(|p| p.id), Some(new));
    assert_eq!(view.watchers.len(), 1);
    let out = h.control(agent, annotate(1));
    assert_eq!(sent(&out, new).len(), 1);
    assert!(sent(&out, old).is_empty());
}

#[test]
fn the_wearable_names_another_session_and_gets_wrong_role_or_not_joined() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let other = SessionId(5);
    for (msg, code) in [
        (
            ControlMessage::Join { session: other },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::Freeze {
                session: other,
                frame: FrameSeq(1),
            },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::KeyframeRequest { session: other },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::Leave { session: SESSION },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::BitrateHint {
                session: SESSION,
                bits_per_second: 1,
            },
            ErrorCode::WrongRole,
        ),
        (
            ControlMessage::Clear { session: other },
            ErrorCode::NotJoined,
        ),
    ] {
        let out = h.control(wearable, msg.clone());
        assert_eq!(errors(&out, wearable), [code], "{msg:?}");
        assert!(closed(&out, wearable).is_none());
    }
}

#[test]
fn an_anchor_for_an_unknown_mark_is_refused_and_a_known_one_reaches_every_watcher() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (agent, _) = h.joined();
    let anchor = |id| ControlMessage::AnchorResolved {
        session: SESSION,
        id: AnnotationId(id),
        depth: farsight_protocol::control::DepthSource::Measured,
        points: vec![[0.0, 0.0, 1.0]; 2],
    };
    let out = h.control(wearable, anchor(3));
    assert_eq!(errors(&out, wearable), [ErrorCode::NoSuchAnnotation]);
    let out = h.control(agent, annotate(3));
    match &sent(&out, wearable)[..] {
        [ControlMessage::Annotate(a)] => assert_eq!(a.author, agent, "the author is set"),
        other => panic!("{other:?}"),
    }
    let out = h.control(wearable, anchor(3));
    assert_eq!(sent(&out, agent), [anchor(3)]);
    assert!(
        matches!(out[0], Output::Persist(Persist::Anchor { .. })),
        "stored before sent"
    );
}

#[test]
fn a_watchers_stream_is_stopped_and_reported() {
    let mut h = Harness::new();
    let _wearable = h.wearable();
    let (agent, _) = h.joined();
    let out = h.input(Input::StreamData {
        member: agent,
        stream: 3,
        data: Bytes::from_static(b"M"),
    });
    assert!(out.contains(&Output::StopStream {
        member: agent,
        stream: 3,
        code: ErrorCode::WrongRole
    }));
    assert_eq!(errors(&out, agent), [ErrorCode::WrongRole]);
}

#[test]
fn a_group_without_a_key_frame_is_refused_and_a_key_frame_asked_for() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let mut data = BytesMut::new();
    header(4).encode(&mut data);
    object(0, false).encode(&mut data);
    let out = h.input(Input::StreamData {
        member: wearable,
        stream: 4,
        data: data.freeze(),
    });
    assert!(out.contains(&Output::StopStream {
        member: wearable,
        stream: 4,
        code: ErrorCode::Malformed
    }));
    assert!(sent(&out, wearable).contains(&ControlMessage::KeyframeRequest { session: SESSION }));
}

#[test]
fn pose_datagrams_reach_watchers_of_the_own_session_only() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (agent, _) = h.joined();
    let pose = |session| {
        farsight_protocol::PoseDatagram {
            session,
            at: Micros(1),
            pose: Pose::IDENTITY,
        }
        .to_bytes()
    };
    let out = h.input(Input::Datagram {
        member: wearable,
        datagram: pose(SESSION),
    });
    assert_eq!(
        out,
        [Output::Datagram {
            member: agent,
            datagram: pose(SESSION)
        }]
    );
    let out = h.input(Input::Datagram {
        member: wearable,
        datagram: pose(SessionId(3)),
    });
    assert!(out.is_empty());
}

#[test]
fn a_stuck_member_reported_by_its_transport_is_removed_and_counted() {
    let mut h = Harness::new();
    let wearable = h.wearable();
    let (agent, _) = h.joined();
    let out = h.input(Input::TransportError {
        member: agent,
        code: ErrorCode::TooSlow,
        message: "took nothing sent to it for 10 s".into(),
    });
    assert_eq!(closed(&out, agent), Some(ErrorCode::TooSlow));
    assert!(
        sent(&out, wearable)
            .iter()
            .any(|m| matches!(m, ControlMessage::Presence { present: false, .. }))
    );
    assert_eq!(h.relay.stats().members_too_slow, 1);
    assert!(h.relay.session(SESSION).expect("live").watchers.is_empty());
}
