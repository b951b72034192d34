//! Property tests for every codec and for the camera math: valid input round-trips, a cut or
//! garbled input gives `Ok(None)` or a typed error and never a panic, and geometry inverts.

use bytes::Bytes;
use farsight_protocol::camera::{CameraModel, Intrinsics, Pose};
use farsight_protocol::control::{
    Annotate, AnnotationKind, CONTROL_HEADER_LEN, ControlDecoder, ControlMessage, DepthSource,
    ErrorCode, MAX_CONTROL_PAYLOAD, MAX_ERROR_MESSAGE_LEN, MAX_NAME_LEN, MAX_PARTICIPANTS,
    MAX_POINTS, MAX_TEXT_LEN, MAX_TOKEN_LEN, Participant, Role, Style,
};
use farsight_protocol::datagram::{POSE_DATAGRAM_LEN, PoseDatagram};
use farsight_protocol::ids::{
    AnnotationId, FrameSeq, GroupSeq, Micros, ParticipantId, SessionId, TrackId,
};
use farsight_protocol::media::{
    MAX_OBJECT_PAYLOAD, MediaDecoder, MediaEvent, OBJECT_HEADER_LEN, Object, ObjectFlags,
    STREAM_HEADER_LEN, StreamHeader,
};
use farsight_protocol::wire::DecodeError;
use nalgebra::{Point2, Point3, Quaternion, UnitQuaternion, Vector3};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any f32 the wire accepts: NaN and infinities are rejected by every decoder.
fn finite_f32() -> impl Strategy<Value = f32> {
    prop::num::f32::POSITIVE
        | prop::num::f32::NEGATIVE
        | prop::num::f32::NORMAL
        | prop::num::f32::SUBNORMAL
        | prop::num::f32::ZERO
}

/// A string of at most `limit` UTF-8 bytes (not characters), reaching the limit now and then.
fn string_within(limit: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=limit).prop_map(move |chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > limit {
                break;
            }
            s.push(c);
        }
        s
    })
}

fn session() -> impl Strategy<Value = SessionId> {
    any::<u64>().prop_map(SessionId)
}

fn role() -> impl Strategy<Value = Role> {
    select(vec![Role::Wearable, Role::Agent, Role::Supervisor])
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    (1u16..=10).prop_map(|v| ErrorCode::from_u16(v).expect("codes 1..=10 are defined"))
}

fn participant() -> impl Strategy<Value = Participant> {
    (any::<u64>(), role(), string_within(MAX_NAME_LEN)).prop_map(|(id, role, name)| Participant {
        id: ParticipantId(id),
        role,
        name,
    })
}

fn annotate() -> impl Strategy<Value = Annotate> {
    (
        (session(), any::<u64>(), any::<u64>(), any::<u64>()),
        select(vec![
            AnnotationKind::Arrow,
            AnnotationKind::Circle,
            AnnotationKind::Ink,
            AnnotationKind::Text,
        ]),
        vec([finite_f32(), finite_f32()], 0..=MAX_POINTS),
        (any::<u32>(), finite_f32()),
        string_within(MAX_TEXT_LEN),
    )
        .prop_map(
            |((session, id, author, frame), kind, points, (rgba, width), text)| Annotate {
                session,
                id: AnnotationId(id),
                author: ParticipantId(author),
                kind,
                frame: FrameSeq(frame),
                points,
                style: Style { rgba, width },
                text,
            },
        )
}

/// Every variant of [`ControlMessage`], with fields anywhere in their documented range.
fn control_message() -> impl Strategy<Value = ControlMessage> {
    use ControlMessage as M;
    prop_oneof![
        (
            any::<u16>(),
            role(),
            string_within(MAX_TOKEN_LEN),
            session()
        )
            .prop_map(|(version, role, token, resume)| M::Hello {
                version,
                role,
                token,
                resume,
            }),
        (any::<u64>(), session(), string_within(MAX_NAME_LEN)).prop_map(
            |(participant, session, name)| M::Welcome {
                participant: ParticipantId(participant),
                session,
                name,
            }
        ),
        (error_code(), string_within(MAX_ERROR_MESSAGE_LEN))
            .prop_map(|(code, message)| M::Error { code, message }),
        session().prop_map(|session| M::Join { session }),
        (session(), vec(participant(), 0..=MAX_PARTICIPANTS)).prop_map(
            |(session, participants)| M::Joined {
                session,
                participants,
            }
        ),
        session().prop_map(|session| M::Leave { session }),
        session().prop_map(|session| M::End { session }),
        (session(), participant(), any::<bool>()).prop_map(|(session, participant, present)| {
            M::Presence {
                session,
                participant,
                present,
            }
        }),
        annotate().prop_map(M::Annotate),
        (
            session(),
            any::<u64>(),
            select(vec![DepthSource::Measured, DepthSource::MedianPlane]),
            vec([finite_f32(), finite_f32(), finite_f32()], 0..=MAX_POINTS),
        )
            .prop_map(|(session, id, depth, points)| M::AnchorResolved {
                session,
                id: AnnotationId(id),
                depth,
                points,
            }),
        (session(), any::<u64>()).prop_map(|(session, id)| M::Erase {
            session,
            id: AnnotationId(id),
        }),
        session().prop_map(|session| M::Clear { session }),
        (session(), any::<u64>()).prop_map(|(session, frame)| M::Freeze {
            session,
            frame: FrameSeq(frame),
        }),
        session().prop_map(|session| M::Unfreeze { session }),
        session().prop_map(|session| M::KeyframeRequest { session }),
        (session(), any::<u64>()).prop_map(|(session, bits_per_second)| M::BitrateHint {
            session,
            bits_per_second,
        }),
    ]
}

/// A unit quaternion from a random direction in 4-space (kept away from the origin so the
/// normalisation is well conditioned).
fn rotation() -> impl Strategy<Value = UnitQuaternion<f64>> {
    [-1.0f64..1.0, -1.0f64..1.0, -1.0f64..1.0, -1.0f64..1.0]
        .prop_filter("not near zero", |[w, i, j, k]| {
            (w * w + i * i + j * j + k * k) > 0.01
        })
        .prop_map(|[w, i, j, k]| UnitQuaternion::from_quaternion(Quaternion::new(w, i, j, k)))
}

fn pose(extent: f64) -> impl Strategy<Value = Pose> {
    (
        [-extent..extent, -extent..extent, -extent..extent],
        rotation(),
    )
        .prop_map(|([x, y, z], q)| Pose::new(Vector3::new(x, y, z), q))
}

/// A pose whose translation is exactly representable in f32, as every pose on the wire is.
fn wire_pose() -> impl Strategy<Value = Pose> {
    (
        [-1000.0f32..1000.0, -1000.0f32..1000.0, -1000.0f32..1000.0],
        rotation(),
    )
        .prop_map(|([x, y, z], q)| Pose::new(Vector3::new(x.into(), y.into(), z.into()), q))
}

fn wire_intrinsics() -> impl Strategy<Value = Intrinsics> {
    (
        (1e-3f32..1e6, 1e-3f32..1e6, finite_f32(), finite_f32()),
        1..=u16::MAX,
        1..=u16::MAX,
    )
        .prop_map(|((fx, fy, cx, cy), width, height)| Intrinsics {
            fx: fx.into(),
            fy: fy.into(),
            cx: cx.into(),
            cy: cy.into(),
            width: width.into(),
            height: height.into(),
        })
}

fn object() -> impl Strategy<Value = Object> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        wire_pose(),
        wire_intrinsics(),
        vec(any::<u8>(), 0..2048),
    )
        .prop_map(
            |(frame, capture, keyframe, pose, intrinsics, payload)| Object {
                frame: FrameSeq(frame),
                capture: Micros(capture),
                flags: ObjectFlags { keyframe },
                camera: CameraModel { pose, intrinsics },
                payload: Bytes::from(payload),
            },
        )
}

fn stream_header() -> impl Strategy<Value = StreamHeader> {
    (session(), any::<u32>(), any::<u64>()).prop_map(|(session, track, group)| StreamHeader {
        session,
        track: TrackId(track),
        group: GroupSeq(group),
    })
}

/// Cuts `bytes` into consecutive chunks whose sizes cycle through `sizes` (each at least 1).
fn chunks<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        out.push(&bytes[at..end]);
        at = end;
    }
    out
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..200, 1..16)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Feeds `chunks` to a control decoder, draining it after every push.
fn decode_control_chunks(chunks: &[&[u8]]) -> Result<Vec<ControlMessage>, DecodeError> {
    let mut d = ControlDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        while let Some(msg) = d.poll()? {
            out.push(msg);
        }
    }
    Ok(out)
}

/// Feeds `chunks` to a media decoder, draining it after every push.
fn decode_media_chunks(chunks: &[&[u8]]) -> Result<(Vec<MediaEvent>, bool), DecodeError> {
    let mut d = MediaDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        d.push(chunk);
        while let Some(e) = d.poll()? {
            out.push(e);
        }
    }
    Ok((out, d.is_idle()))
}

/// Drains a control decoder until it wants more bytes or fails; must terminate and not panic.
fn drain_control(d: &mut ControlDecoder) {
    while let Ok(Some(_)) = d.poll() {}
}

fn drain_media(d: &mut MediaDecoder) {
    while let Ok(Some(_)) = d.poll() {}
}

/// The payload of one framed control message.
fn payload_of(msg: &ControlMessage) -> Vec<u8> {
    msg.to_bytes()[CONTROL_HEADER_LEN..].to_vec()
}

fn object_bytes(o: &Object) -> Vec<u8> {
    o.to_bytes().to_vec()
}

/// Quaternions `a` and `b` encode the same rotation to within `tol` radians.
fn same_rotation(a: &UnitQuaternion<f64>, b: &UnitQuaternion<f64>, tol: f64) -> bool {
    a.angle_to(b) <= tol
}

// ---------------------------------------------------------------------------------------------
// Control stream
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn control_message_round_trips_through_payload_decoder(msg in control_message()) {
        let bytes = msg.to_bytes();
        let ty = u16::from_be_bytes([bytes[0], bytes[1]]);
        let len = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
        prop_assert_eq!(ty, msg.type_code());
        prop_assert_eq!(len, bytes.len() - CONTROL_HEADER_LEN);
        prop_assert!(len <= MAX_CONTROL_PAYLOAD, "encoder wrote {} bytes", len);
        let back = ControlMessage::decode_payload(ty, &bytes[CONTROL_HEADER_LEN..]);
        prop_assert_eq!(back, Ok(Some(msg)));
    }

    #[test]
    fn control_stream_round_trips_in_any_chunking(
        msgs in vec(control_message(), 1..6),
        unknown in vec((0x40u16..=u16::MAX, vec(any::<u8>(), 0..64)), 0..4),
        sizes in chunk_sizes(),
    ) {
        // Unknown message types (0x40 and up are unassigned) are interleaved and skipped.
        let mut wire = Vec::new();
        for (i, msg) in msgs.iter().enumerate() {
            if let Some((ty, body)) = unknown.get(i) {
                wire.extend_from_slice(&ty.to_be_bytes());
                wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
                wire.extend_from_slice(body);
            }
            msg.encode(&mut wire);
        }
        prop_assert_eq!(decode_control_chunks(&chunks(&wire, &sizes)), Ok(msgs));
    }

    #[test]
    fn truncated_control_message_waits_for_more(msg in control_message(), cut in any::<prop::sample::Index>()) {
        let bytes = msg.to_bytes();
        let cut = cut.index(bytes.len()); // strictly shorter than the message
        let mut d = ControlDecoder::new();
        d.push(&bytes[..cut]);
        prop_assert_eq!(d.poll(), Ok(None));
        prop_assert_eq!(d.buffered(), cut);
        d.push(&bytes[cut..]);
        prop_assert_eq!(d.poll(), Ok(Some(msg)));
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn truncated_control_payload_is_a_typed_error(msg in control_message(), cut in any::<prop::sample::Index>()) {
        let payload = payload_of(&msg);
        prop_assume!(!payload.is_empty());
        let cut = cut.index(payload.len());
        let got = ControlMessage::decode_payload(msg.type_code(), &payload[..cut]);
        prop_assert!(matches!(got, Err(DecodeError::Truncated { .. })), "{:?}", got);
    }

    #[test]
    fn control_payload_with_trailing_bytes_is_refused(msg in control_message(), extra in vec(any::<u8>(), 1..8)) {
        let mut payload = payload_of(&msg);
        payload.extend_from_slice(&extra);
        let got = ControlMessage::decode_payload(msg.type_code(), &payload);
        prop_assert!(got.is_err(), "{:?}", got);
    }

    #[test]
    fn garbage_control_payload_never_panics_and_decodes_canonically(
        ty in prop_oneof![0u16..0x30, any::<u16>()],
        payload in vec(any::<u8>(), 0..256),
    ) {
        if let Ok(Some(msg)) = ControlMessage::decode_payload(ty, &payload) {
            // Whatever decodes is in the encoder's image: it re-encodes to the same bytes.
            prop_assert_eq!(msg.type_code(), ty);
            prop_assert_eq!(payload_of(&msg), payload);
        }
    }

    #[test]
    fn mutated_control_message_never_panics_and_decodes_canonically(
        msg in control_message(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut payload = payload_of(&msg);
        prop_assume!(!payload.is_empty());
        for (at, byte) in &flips {
            let at = at.index(payload.len());
            payload[at] ^= *byte;
        }
        let end = payload.len() - cut.index(payload.len() / 4 + 1);
        let payload = &payload[..end];
        if let Ok(Some(back)) = ControlMessage::decode_payload(msg.type_code(), payload) {
            prop_assert_eq!(payload_of(&back), payload.to_vec());
        }
    }

    #[test]
    fn garbage_control_stream_never_panics(bytes in vec(any::<u8>(), 0..512), sizes in chunk_sizes()) {
        let mut d = ControlDecoder::new();
        for chunk in chunks(&bytes, &sizes) {
            d.push(chunk);
            drain_control(&mut d);
        }
    }

    #[test]
    fn oversize_control_length_is_refused_from_the_header(
        ty in any::<u16>(),
        len in (MAX_CONTROL_PAYLOAD as u32 + 1)..=u32::MAX,
    ) {
        let mut d = ControlDecoder::new();
        d.push(&ty.to_be_bytes());
        d.push(&len.to_be_bytes());
        prop_assert_eq!(
            d.poll(),
            Err(DecodeError::TooLong {
                field: "control payload",
                len: len as usize,
                limit: MAX_CONTROL_PAYLOAD,
            })
        );
    }

    #[test]
    fn oversize_string_length_is_too_long(len in (MAX_TOKEN_LEN as u16 + 1)..=u16::MAX) {
        // Hello: version, role, then the token's u16 length.
        let mut payload = vec![0, 1, Role::Agent as u8];
        payload.extend_from_slice(&len.to_be_bytes());
        let got = ControlMessage::decode_payload(0x01, &payload);
        prop_assert_eq!(
            got,
            Err(DecodeError::TooLong {
                field: "Hello.token",
                len: len.into(),
                limit: MAX_TOKEN_LEN,
            })
        );
    }

    #[test]
    fn oversize_point_count_is_too_long(n in (MAX_POINTS as u16 + 1)..=u16::MAX) {
        // AnchorResolved: session, id, depth source, then the u16 point count.
        let mut payload = vec![0u8; 16];
        payload.push(DepthSource::Measured as u8);
        payload.extend_from_slice(&n.to_be_bytes());
        let got = ControlMessage::decode_payload(0x11, &payload);
        prop_assert_eq!(
            got,
            Err(DecodeError::TooLong {
                field: "AnchorResolved.points",
                len: n.into(),
                limit: MAX_POINTS,
            })
        );
    }

    #[test]
    fn oversize_participant_count_is_too_long(n in (MAX_PARTICIPANTS as u16 + 1)..=u16::MAX) {
        let mut payload = vec![0u8; 8];
        payload.extend_from_slice(&n.to_be_bytes());
        let got = ControlMessage::decode_payload(0x05, &payload);
        prop_assert!(
            matches!(got, Err(DecodeError::TooLong { field: "Joined.participants", .. })),
            "{:?}",
            got
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Media streams
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn media_stream_round_trips_in_any_chunking(
        header in stream_header(),
        objects in vec(object(), 0..5),
        sizes in chunk_sizes(),
    ) {
        let mut wire = Vec::new();
        header.encode(&mut wire);
        objects.iter().for_each(|o| o.encode(&mut wire));
        prop_assert_eq!(
            wire.len(),
            STREAM_HEADER_LEN + objects.iter().map(Object::encoded_len).sum::<usize>()
        );

        let (events, idle) = decode_media_chunks(&chunks(&wire, &sizes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(idle, "a complete stream leaves nothing buffered");
        prop_assert_eq!(events.len(), objects.len() + 1);
        prop_assert_eq!(&events[0], &MediaEvent::Header(header));
        for (event, sent) in events[1..].iter().zip(&objects) {
            let MediaEvent::Object { object: got, .. } = event else {
                return Err(TestCaseError::fail(format!("expected an object, got {event:?}")));
            };
            // Everything but the rotation is carried exactly: ids, flags, payload, and the
            // f32-representable translation and intrinsics.
            prop_assert_eq!(got.frame, sent.frame);
            prop_assert_eq!(got.capture, sent.capture);
            prop_assert_eq!(got.flags, sent.flags);
            prop_assert_eq!(&got.payload, &sent.payload);
            prop_assert_eq!(got.camera.intrinsics, sent.camera.intrinsics);
            prop_assert_eq!(got.camera.pose.translation, sent.camera.pose.translation);
            // The rotation passes through f32 and is renormalised.
            prop_assert!(same_rotation(&got.camera.pose.rotation, &sent.camera.pose.rotation, 1e-6));
            // Once on the wire, a decoded object re-encodes to the same bytes.
            let first = object_bytes(sent);
            prop_assert_eq!(object_bytes(got), first);
        }
    }

    #[test]
    fn stream_header_round_trips(header in stream_header()) {
        let mut wire = Vec::new();
        header.encode(&mut wire);
        prop_assert_eq!(wire.len(), STREAM_HEADER_LEN);
        prop_assert_eq!(wire[0], 0x4d);
        prop_assert_eq!(StreamHeader::decode(&wire), Ok(header));
    }

    #[test]
    fn truncated_media_stream_yields_a_prefix_and_waits(
        header in stream_header(),
        objects in vec(object(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        header.encode(&mut wire);
        objects.iter().for_each(|o| o.encode(&mut wire));
        let cut = cut.index(wire.len());
        let (full, _) = decode_media_chunks(&[&wire]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (part, idle) = decode_media_chunks(&[&wire[..cut]])
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(part.len() < full.len());
        prop_assert_eq!(&part[..], &full[..part.len()]);
        // A stream that ends here ended mid-object (or mid-header) unless the cut fell exactly
        // between two objects.
        let boundaries: Vec<usize> = std::iter::once(STREAM_HEADER_LEN)
            .chain(objects.iter().scan(STREAM_HEADER_LEN, |at, o| {
                *at += o.encoded_len();
                Some(*at)
            }))
            .collect();
        prop_assert_eq!(idle, cut == 0 || boundaries.contains(&cut));
    }

    #[test]
    fn truncated_stream_header_is_a_typed_error(header in stream_header(), cut in 0..STREAM_HEADER_LEN) {
        let mut wire = Vec::new();
        header.encode(&mut wire);
        let got = StreamHeader::decode(&wire[..cut]);
        prop_assert!(matches!(got, Err(DecodeError::Truncated { .. })), "{:?}", got);
    }

    #[test]
    fn garbage_media_stream_never_panics(bytes in vec(any::<u8>(), 0..1024), sizes in chunk_sizes()) {
        let mut d = MediaDecoder::new();
        for chunk in chunks(&bytes, &sizes) {
            d.push(chunk);
            drain_media(&mut d);
        }
        let _ = StreamHeader::decode(&bytes);
    }

    #[test]
    fn garbage_after_a_valid_header_never_panics(
        header in stream_header(),
        bytes in vec(any::<u8>(), 0..1024),
        sizes in chunk_sizes(),
    ) {
        let mut wire = Vec::new();
        header.encode(&mut wire);
        wire.extend_from_slice(&bytes);
        let mut d = MediaDecoder::new();
        for chunk in chunks(&wire, &sizes) {
            d.push(chunk);
            drain_media(&mut d);
        }
    }

    #[test]
    fn oversize_object_payload_is_refused_from_the_header(
        o in object(),
        len in (MAX_OBJECT_PAYLOAD as u32 + 1)..=u32::MAX,
    ) {
        let mut head: [u8; OBJECT_HEADER_LEN] = object_bytes(&o)[..OBJECT_HEADER_LEN]
            .try_into()
            .expect("an object starts with its fixed header");
        head[OBJECT_HEADER_LEN - 4..].copy_from_slice(&len.to_be_bytes());
        prop_assert_eq!(
            Object::decode_header(&head),
            Err(DecodeError::TooLong {
                field: "Object.payload",
                len: len as usize,
                limit: MAX_OBJECT_PAYLOAD,
            })
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Pose datagrams
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn pose_datagram_round_trips(s in session(), at in any::<u64>(), pose in pose(1000.0)) {
        let d = PoseDatagram { session: s, at: Micros(at), pose };
        let first = d.to_bytes();
        prop_assert_eq!(first.len(), POSE_DATAGRAM_LEN);
        prop_assert_eq!(first[0], 0x50);
        let back = PoseDatagram::decode(&first).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.session, s);
        prop_assert_eq!(back.at, Micros(at));
        // Translations within ±1000 m survive f32 to well under a millimetre.
        prop_assert!((back.pose.translation - pose.translation).amax() <= 1e-4);
        prop_assert!(same_rotation(&back.pose.rotation, &pose.rotation, 1e-6));
        // f32 precision: compare what goes on the wire, not the f64s.
        prop_assert_eq!(back.to_bytes(), first);
    }

    #[test]
    fn truncated_pose_datagram_is_a_typed_error(pose in pose(10.0), cut in 0..POSE_DATAGRAM_LEN) {
        let d = PoseDatagram { session: SessionId(1), at: Micros(2), pose };
        let bytes = d.to_bytes();
        let got = PoseDatagram::decode(&bytes[..cut]);
        prop_assert!(matches!(got, Err(DecodeError::Truncated { .. })), "{:?}", got);
    }

    #[test]
    fn garbage_pose_datagram_never_panics(mut bytes in vec(any::<u8>(), 0..64), typed in any::<bool>()) {
        if typed && !bytes.is_empty() {
            bytes[0] = 0x50;
        }
        if let Ok(d) = PoseDatagram::decode(&bytes) {
            prop_assert_eq!(bytes.len(), POSE_DATAGRAM_LEN);
            prop_assert!((d.pose.rotation.norm() - 1.0).abs() <= 1e-6);
            // One trip through the codec reaches a fixed point.
            let again = d.to_bytes();
            prop_assert_eq!(PoseDatagram::decode(&again).map(|d| d.to_bytes()), Ok(again));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Camera math
// ---------------------------------------------------------------------------------------------

fn camera() -> impl Strategy<Value = CameraModel> {
    (
        pose(10.0),
        (16u32..4096, 16u32..4096),
        (50.0f64..3000.0, 50.0f64..3000.0),
        (0.0f64..1.0, 0.0f64..1.0),
    )
        .prop_map(|(pose, (width, height), (fx, fy), (px, py))| CameraModel {
            pose,
            intrinsics: Intrinsics {
                fx,
                fy,
                cx: px * width as f64,
                cy: py * height as f64,
                width,
                height,
            },
        })
}

proptest! {
    #[test]
    fn unproject_then_project_returns_the_pixel(
        cam in camera(),
        (u, v) in (0.0f64..1.0, 0.0f64..1.0),
        depth in 0.05f64..100.0,
    ) {
        let pixel = cam.intrinsics.from_normalised(Point2::new(u, v));
        let world = cam.unproject(pixel, depth);
        let back = cam.project(&world).ok_or_else(|| TestCaseError::fail("point behind the camera"))?;
        prop_assert!((back - pixel).norm() < 1e-6, "{} -> {}", pixel, back);
        prop_assert!((cam.depth_of(&world) - depth).abs() < 1e-9 * depth.max(1.0));
    }

    #[test]
    fn points_behind_the_camera_do_not_project(
        cam in camera(),
        (u, v) in (0.0f64..1.0, 0.0f64..1.0),
        depth in 0.05f64..100.0,
    ) {
        let pixel = cam.intrinsics.from_normalised(Point2::new(u, v));
        let world = cam.unproject(pixel, -depth);
        prop_assert_eq!(cam.project(&world), None);
    }

    #[test]
    fn normalised_coordinates_round_trip(cam in camera(), (x, y) in (0.0f64..4096.0, 0.0f64..4096.0)) {
        let k = cam.intrinsics;
        let p = Point2::new(x, y);
        let back = k.from_normalised(k.to_normalised(p));
        prop_assert!((back - p).norm() < 1e-9);
    }

    #[test]
    fn interpolation_ends_at_the_endpoints(a in pose(100.0), b in pose(100.0)) {
        let start = a.interpolate(&b, 0.0);
        let end = a.interpolate(&b, 1.0);
        prop_assert!((start.translation - a.translation).norm() < 1e-12);
        prop_assert!((end.translation - b.translation).norm() < 1e-12);
        prop_assert!(same_rotation(&start.rotation, &a.rotation, 1e-7));
        prop_assert!(same_rotation(&end.rotation, &b.rotation, 1e-7));
        // Out-of-range t clamps to the ends.
        prop_assert_eq!(a.interpolate(&b, -3.0), start);
        prop_assert_eq!(a.interpolate(&b, 7.0), end);
    }

    #[test]
    fn interpolated_world_point_lies_between_the_endpoints(
        a in pose(100.0),
        b in pose(100.0),
        t in 0.0f64..=1.0,
    ) {
        // The camera origin moves on the segment between the two positions.
        let mid = a.interpolate(&b, t);
        let origin = mid.camera_to_world(&Point3::origin());
        let expected = a.translation.lerp(&b.translation, t);
        prop_assert!((origin.coords - expected).norm() < 1e-9);
        prop_assert!((mid.rotation.norm() - 1.0).abs() < 1e-9);
    }
}
