//! Control-stream messages: the handshake, session membership and annotations.
//!
//! Framing: `type: u16 | length: u32 | payload[length]`, big-endian. Unknown types are skipped
//! by length; a length above [`MAX_CONTROL_PAYLOAD`] or a malformed payload is an error.

use bytes::{Buf, BufMut, BytesMut};

use crate::ids::{AnnotationId, FrameSeq, ParticipantId, SessionId};
use crate::wire::{DecodeError, Reader, put_string};

/// Largest control payload accepted, in bytes.
pub const MAX_CONTROL_PAYLOAD: usize = 64 * 1024;
/// Bytes before every control payload: type (u16) and length (u32).
pub const CONTROL_HEADER_LEN: usize = 6;
pub const MAX_TOKEN_LEN: usize = 256;
pub const MAX_NAME_LEN: usize = 128;
pub const MAX_TEXT_LEN: usize = 1024;
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;
pub const MAX_POINTS: usize = 4096;
pub const MAX_PARTICIPANTS: usize = 256;

/// Who is on the other end of a connection. Sent in `Hello`, checked against the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Wearable = 1,
    Agent = 2,
    Supervisor = 3,
}

impl Role {
    pub fn from_u8(v: u8) -> Option<Role> {
        match v {
            1 => Some(Role::Wearable),
            2 => Some(Role::Agent),
            3 => Some(Role::Supervisor),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Wearable => "wearable",
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }

    /// Agents and supervisors watch and annotate; wearables publish.
    pub fn watches(self) -> bool {
        matches!(self, Role::Agent | Role::Supervisor)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wearable" => Ok(Role::Wearable),
            "agent" => Ok(Role::Agent),
            "supervisor" => Ok(Role::Supervisor),
            other => Err(format!(
                "unknown role {other:?} (wearable, agent or supervisor)"
            )),
        }
    }
}

/// Error codes carried by `Error` messages and used as QUIC application close codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    UnsupportedVersion = 1,
    Unauthorized = 2,
    WrongRole = 3,
    NoSuchSession = 4,
    NotJoined = 5,
    Malformed = 6,
    TooLarge = 7,
    SessionBusy = 8,
    UnexpectedMessage = 9,
    Internal = 10,
    NoSuchAnnotation = 11,
    /// The connection left too many control messages unread and was closed.
    TooSlow = 12,
}

impl ErrorCode {
    pub fn from_u16(v: u16) -> Option<ErrorCode> {
        use ErrorCode::*;
        [
            UnsupportedVersion,
            Unauthorized,
            WrongRole,
            NoSuchSession,
            NotJoined,
            Malformed,
            TooLarge,
            SessionBusy,
            UnexpectedMessage,
            Internal,
            NoSuchAnnotation,
            TooSlow,
        ]
        .into_iter()
        .find(|c| *c as u16 == v)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnotationKind {
    Arrow = 1,
    Circle = 2,
    Ink = 3,
    Text = 4,
}

impl AnnotationKind {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Arrow),
            2 => Some(Self::Circle),
            3 => Some(Self::Ink),
            4 => Some(Self::Text),
            _ => None,
        }
    }
}

/// How a mark is drawn: colour as 0xRRGGBBAA and stroke width in points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Style {
    pub rgba: u32,
    pub width: f32,
}

impl Default for Style {
    fn default() -> Self {
        Self {
            rgba: 0xff3b30ff,
            width: 4.0,
        }
    }
}

/// A mark drawn by an agent on one frame, in normalised image coordinates of that frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Annotate {
    pub session: SessionId,
    pub id: AnnotationId,
    /// Filled in by the server with the sender's identity; ignored when a client sends it.
    pub author: ParticipantId,
    pub kind: AnnotationKind,
    pub frame: FrameSeq,
    pub points: Vec<[f32; 2]>,
    pub style: Style,
    pub text: String,
}

/// A participant as shown to the others in a session.
#[derive(Clone, Debug, PartialEq)]
pub struct Participant {
    pub id: ParticipantId,
    pub role: Role,
    pub name: String,
}

/// How the wearable found the depth of an anchored mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthSource {
    /// Depth read at the marked pixels (depth buffer, platform depth or hit test).
    Measured = 1,
    /// No depth was known: the mark lies on a plane at the frame's median depth.
    MedianPlane = 2,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ControlMessage {
    /// Client → server, first message: protocol version, role, token, and the session to
    /// resume after a reconnect (0: start a new one; wearables only).
    Hello {
        version: u16,
        role: Role,
        token: String,
        resume: SessionId,
    },
    /// Server → client: accepted. `session` is the wearable's session (0 for watchers).
    Welcome {
        participant: ParticipantId,
        session: SessionId,
        name: String,
    },
    /// Either way: a typed error. After an error in the handshake the connection closes.
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Watcher → server: subscribe to a session's media and annotations.
    Join {
        session: SessionId,
    },
    /// Server → watcher: joined; the participants already there.
    Joined {
        session: SessionId,
        participants: Vec<Participant>,
    },
    /// Watcher → server: unsubscribe.
    Leave {
        session: SessionId,
    },
    /// Anyone in a session → server, and server → everyone else in it: the session is over
    /// for everyone; it cannot be joined or resumed again.
    End {
        session: SessionId,
    },
    /// Server → everyone in a session: someone joined (`present`) or left.
    Presence {
        session: SessionId,
        participant: Participant,
        present: bool,
    },
    Annotate(Annotate),
    /// Wearable → server → watchers: the world points of an annotation, in metres.
    AnchorResolved {
        session: SessionId,
        id: AnnotationId,
        depth: DepthSource,
        points: Vec<[f32; 3]>,
    },
    Erase {
        session: SessionId,
        id: AnnotationId,
    },
    Clear {
        session: SessionId,
    },
    Freeze {
        session: SessionId,
        frame: FrameSeq,
    },
    Unfreeze {
        session: SessionId,
    },
    /// Watcher/server → wearable: start a new group with a key frame now.
    KeyframeRequest {
        session: SessionId,
    },
    /// Server → wearable: the slowest watcher can take about this many bits per second.
    BitrateHint {
        session: SessionId,
        bits_per_second: u64,
    },
}

mod types {
    pub const HELLO: u16 = 0x01;
    pub const WELCOME: u16 = 0x02;
    pub const ERROR: u16 = 0x03;
    pub const JOIN: u16 = 0x04;
    pub const JOINED: u16 = 0x05;
    pub const LEAVE: u16 = 0x06;
    pub const PRESENCE: u16 = 0x07;
    pub const END: u16 = 0x08;
    pub const ANNOTATE: u16 = 0x10;
    pub const ANCHOR_RESOLVED: u16 = 0x11;
    pub const ERASE: u16 = 0x12;
    pub const CLEAR: u16 = 0x13;
    pub const FREEZE: u16 = 0x14;
    pub const UNFREEZE: u16 = 0x15;
    pub const KEYFRAME_REQUEST: u16 = 0x20;
    pub const BITRATE_HINT: u16 = 0x21;
}

impl ControlMessage {
    pub fn type_code(&self) -> u16 {
        use ControlMessage::*;
        match self {
            Hello { .. } => types::HELLO,
            Welcome { .. } => types::WELCOME,
            Error { .. } => types::ERROR,
            Join { .. } => types::JOIN,
            Joined { .. } => types::JOINED,
            Leave { .. } => types::LEAVE,
            Presence { .. } => types::PRESENCE,
            End { .. } => types::END,
            Annotate(_) => types::ANNOTATE,
            AnchorResolved { .. } => types::ANCHOR_RESOLVED,
            Erase { .. } => types::ERASE,
            Clear { .. } => types::CLEAR,
            Freeze { .. } => types::FREEZE,
            Unfreeze { .. } => types::UNFREEZE,
            KeyframeRequest { .. } => types::KEYFRAME_REQUEST,
            BitrateHint { .. } => types::BITRATE_HINT,
        }
    }

    /// The session a message is about, for authorisation; `None` for handshake messages.
    pub fn session(&self) -> Option<SessionId> {
        use ControlMessage::*;
        match self {
            Hello { .. } | Welcome { .. } | Error { .. } => None,
            Join { session }
            | Joined { session, .. }
            | Leave { session }
            | End { session }
            | Presence { session, .. }
            | AnchorResolved { session, .. }
            | Erase { session, .. }
            | Clear { session }
            | Freeze { session, .. }
            | Unfreeze { session }
            | KeyframeRequest { session }
            | BitrateHint { session, .. } => Some(*session),
            Annotate(a) => Some(a.session),
        }
    }

    /// Appends the framed message (header and payload) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        let mut body = BytesMut::new();
        self.encode_payload(&mut body);
        out.put_u16(self.type_code());
        out.put_u32(body.len() as u32);
        out.put_slice(&body);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    fn encode_payload(&self, b: &mut BytesMut) {
        use ControlMessage::*;
        match self {
            Hello {
                version,
                role,
                token,
                resume,
            } => {
                b.put_u16(*version);
                b.put_u8(*role as u8);
                put_string(b, token, MAX_TOKEN_LEN);
                b.put_u64(resume.0);
            }
            Welcome {
                participant,
                session,
                name,
            } => {
                b.put_u64(participant.0);
                b.put_u64(session.0);
                put_string(b, name, MAX_NAME_LEN);
            }
            Error { code, message } => {
                b.put_u16(*code as u16);
                put_string(b, message, MAX_ERROR_MESSAGE_LEN);
            }
            Join { session }
            | Leave { session }
            | End { session }
            | Clear { session }
            | Unfreeze { session }
            | KeyframeRequest { session } => b.put_u64(session.0),
            Joined {
                session,
                participants,
            } => put_joined(b, *session, participants),
            Presence {
                session,
                participant,
                present,
            } => {
                b.put_u64(session.0);
                put_participant(b, participant);
                b.put_u8(*present as u8);
            }
            Annotate(a) => put_annotate(b, a),
            AnchorResolved {
                session,
                id,
                depth,
                points,
            } => put_anchor_resolved(b, *session, *id, *depth, points),
            Erase { session, id } => put_session_and(b, *session, id.0),
            Freeze { session, frame } => put_session_and(b, *session, frame.0),
            BitrateHint {
                session,
                bits_per_second,
            } => put_session_and(b, *session, *bits_per_second),
        }
    }

    /// Decodes one payload of type `ty`. `Ok(None)` for an unknown type, which callers skip.
    pub fn decode_payload(ty: u16, payload: &[u8]) -> Result<Option<Self>, DecodeError> {
        use ControlMessage as M;
        let mut r = Reader::new(payload);
        let r = &mut r;
        let msg = match ty {
            types::HELLO => read_hello(r)?,
            types::WELCOME => M::Welcome {
                participant: ParticipantId(r.u64("Welcome.participant")?),
                session: read_session(r)?,
                name: r.string("Welcome.name", MAX_NAME_LEN)?,
            },
            types::ERROR => M::Error {
                code: error_code(r)?,
                message: r.string("Error.message", MAX_ERROR_MESSAGE_LEN)?,
            },
            types::JOIN => M::Join {
                session: read_session(r)?,
            },
            types::JOINED => read_joined(r)?,
            types::LEAVE => M::Leave {
                session: read_session(r)?,
            },
            types::END => M::End {
                session: read_session(r)?,
            },
            types::PRESENCE => M::Presence {
                session: read_session(r)?,
                participant: participant(r)?,
                present: boolean(r, "Presence.present")?,
            },
            types::ANNOTATE => M::Annotate(read_annotate(r)?),
            types::ANCHOR_RESOLVED => read_anchor_resolved(r)?,
            types::ERASE => M::Erase {
                session: read_session(r)?,
                id: AnnotationId(r.u64("Erase.id")?),
            },
            types::CLEAR => M::Clear {
                session: read_session(r)?,
            },
            types::FREEZE => M::Freeze {
                session: read_session(r)?,
                frame: FrameSeq(r.u64("Freeze.frame")?),
            },
            types::UNFREEZE => M::Unfreeze {
                session: read_session(r)?,
            },
            types::KEYFRAME_REQUEST => M::KeyframeRequest {
                session: read_session(r)?,
            },
            types::BITRATE_HINT => M::BitrateHint {
                session: read_session(r)?,
                bits_per_second: r.u64("BitrateHint.bits_per_second")?,
            },
            _ => return Ok(None),
        };
        if r.remaining() > 0 {
            return Err(DecodeError::TrailingBytes {
                message: "control message",
                extra: r.remaining(),
            });
        }
        Ok(Some(msg))
    }
}

/// The session id that leads most payloads. Its error names the bare field, whatever the
/// message, as it always has.
fn read_session(r: &mut Reader) -> Result<SessionId, DecodeError> {
    r.u64("session").map(SessionId)
}

fn read_hello(r: &mut Reader) -> Result<ControlMessage, DecodeError> {
    Ok(ControlMessage::Hello {
        version: r.u16("Hello.version")?,
        role: role(r, "Hello.role")?,
        token: r.string("Hello.token", MAX_TOKEN_LEN)?,
        resume: SessionId(r.u64("Hello.resume")?),
    })
}

fn error_code(r: &mut Reader) -> Result<ErrorCode, DecodeError> {
    let raw = r.u16("Error.code")?;
    ErrorCode::from_u16(raw).ok_or(DecodeError::InvalidValue {
        field: "Error.code",
        value: raw.into(),
    })
}

/// Sends at most [`MAX_PARTICIPANTS`]; the decoder rejects more.
fn put_joined(b: &mut BytesMut, session: SessionId, participants: &[Participant]) {
    b.put_u64(session.0);
    let n = participants.len().min(MAX_PARTICIPANTS);
    b.put_u16(n as u16);
    for p in &participants[..n] {
        put_participant(b, p);
    }
}

fn read_joined(r: &mut Reader) -> Result<ControlMessage, DecodeError> {
    let session = read_session(r)?;
    let n = r.count("Joined.participants", MAX_PARTICIPANTS)?;
    let participants = (0..n).map(|_| participant(r)).collect::<Result<_, _>>()?;
    Ok(ControlMessage::Joined {
        session,
        participants,
    })
}

fn put_session_and(b: &mut BytesMut, session: SessionId, value: u64) {
    b.put_u64(session.0);
    b.put_u64(value);
}

/// Sends at most [`MAX_POINTS`]; the decoder rejects more.
fn put_annotate(b: &mut BytesMut, a: &Annotate) {
    b.put_u64(a.session.0);
    b.put_u64(a.id.0);
    b.put_u64(a.author.0);
    b.put_u8(a.kind as u8);
    b.put_u64(a.frame.0);
    let n = a.points.len().min(MAX_POINTS);
    b.put_u16(n as u16);
    for [x, y] in &a.points[..n] {
        b.put_f32(*x);
        b.put_f32(*y);
    }
    b.put_u32(a.style.rgba);
    b.put_f32(a.style.width);
    put_string(b, &a.text, MAX_TEXT_LEN);
}

fn read_annotate(r: &mut Reader) -> Result<Annotate, DecodeError> {
    let session = read_session(r)?;
    let id = AnnotationId(r.u64("Annotate.id")?);
    let author = ParticipantId(r.u64("Annotate.author")?);
    let kind = annotation_kind(r)?;
    let frame = FrameSeq(r.u64("Annotate.frame")?);
    let n = r.count("Annotate.points", MAX_POINTS)?;
    let points = (0..n)
        .map(|_| Ok([r.f32("Annotate.points.x")?, r.f32("Annotate.points.y")?]))
        .collect::<Result<_, DecodeError>>()?;
    let style = Style {
        rgba: r.u32("Annotate.style.rgba")?,
        width: r.f32("Annotate.style.width")?,
    };
    Ok(Annotate {
        session,
        id,
        author,
        kind,
        frame,
        points,
        style,
        text: r.string("Annotate.text", MAX_TEXT_LEN)?,
    })
}

fn annotation_kind(r: &mut Reader) -> Result<AnnotationKind, DecodeError> {
    let raw = r.u8("Annotate.kind")?;
    AnnotationKind::from_u8(raw).ok_or(DecodeError::InvalidValue {
        field: "Annotate.kind",
        value: raw.into(),
    })
}

/// Sends at most [`MAX_POINTS`]; the decoder rejects more.
fn put_anchor_resolved(
    b: &mut BytesMut,
    session: SessionId,
    id: AnnotationId,
    depth: DepthSource,
    points: &[[f32; 3]],
) {
    b.put_u64(session.0);
    b.put_u64(id.0);
    b.put_u8(depth as u8);
    let n = points.len().min(MAX_POINTS);
    b.put_u16(n as u16);
    for p in &points[..n] {
        p.iter().for_each(|v| b.put_f32(*v));
    }
}

fn read_anchor_resolved(r: &mut Reader) -> Result<ControlMessage, DecodeError> {
    let session = read_session(r)?;
    let id = AnnotationId(r.u64("AnchorResolved.id")?);
    let depth = depth_source(r)?;
    let n = r.count("AnchorResolved.points", MAX_POINTS)?;
    let points = (0..n)
        .map(|_| {
            let f = "AnchorResolved.points";
            Ok([r.f32(f)?, r.f32(f)?, r.f32(f)?])
        })
        .collect::<Result<_, DecodeError>>()?;
    Ok(ControlMessage::AnchorResolved {
        session,
        id,
        depth,
        points,
    })
}

fn depth_source(r: &mut Reader) -> Result<DepthSource, DecodeError> {
    let raw = r.u8("AnchorResolved.depth")?;
    match raw {
        1 => Ok(DepthSource::Measured),
        2 => Ok(DepthSource::MedianPlane),
        _ => Err(DecodeError::InvalidValue {
            field: "AnchorResolved.depth",
            value: raw.into(),
        }),
    }
}

fn role(r: &mut Reader, field: &'static str) -> Result<Role, DecodeError> {
    let raw = r.u8(field)?;
    Role::from_u8(raw).ok_or(DecodeError::InvalidValue {
        field,
        value: raw.into(),
    })
}

fn boolean(r: &mut Reader, field: &'static str) -> Result<bool, DecodeError> {
    match r.u8(field)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(DecodeError::InvalidValue {
            field,
            value: v.into(),
        }),
    }
}

fn put_participant(b: &mut BytesMut, p: &Participant) {
    b.put_u64(p.id.0);
    b.put_u8(p.role as u8);
    put_string(b, &p.name, MAX_NAME_LEN);
}

fn participant(r: &mut Reader) -> Result<Participant, DecodeError> {
    Ok(Participant {
        id: ParticipantId(r.u64("Participant.id")?),
        role: role(r, "Participant.role")?,
        name: r.string("Participant.name", MAX_NAME_LEN)?,
    })
}

/// Incremental decoder for a control stream: push bytes as they arrive, pop whole messages.
#[derive(Debug, Default)]
pub struct ControlDecoder {
    buf: BytesMut,
}

impl ControlDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. Unknown message types
    /// are skipped. An oversize length is reported as soon as the header arrives, before the
    /// payload is buffered.
    pub fn poll(&mut self) -> Result<Option<ControlMessage>, DecodeError> {
        loop {
            if self.buf.len() < CONTROL_HEADER_LEN {
                return Ok(None);
            }
            let ty = u16::from_be_bytes([self.buf[0], self.buf[1]]);
            let len =
                u32::from_be_bytes([self.buf[2], self.buf[3], self.buf[4], self.buf[5]]) as usize;
            if len > MAX_CONTROL_PAYLOAD {
                return Err(DecodeError::TooLong {
                    field: "control payload",
                    len,
                    limit: MAX_CONTROL_PAYLOAD,
                });
            }
            if self.buf.len() < CONTROL_HEADER_LEN + len {
                return Ok(None);
            }
            self.buf.advance(CONTROL_HEADER_LEN);
            let payload = self.buf.split_to(len);
            if let Some(msg) = ControlMessage::decode_payload(ty, &payload)? {
                return Ok(Some(msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_bytes_match_the_documented_layout() {
        let msg = ControlMessage::Hello {
            version: 1,
            role: Role::Agent,
            token: "ab".into(),
            resume: SessionId(0),
        };
        assert_eq!(
            msg.to_bytes(),
            [
                0, 1, 0, 0, 0, 15, // type 1, length 15
                0, 1, 2, // version 1, role agent
                0, 2, b'a', b'b', // token
                0, 0, 0, 0, 0, 0, 0, 0 // resume
            ]
        );
    }

    #[test]
    fn unknown_type_is_skipped() {
        let mut d = ControlDecoder::new();
        d.push(&[0x7f, 0x00, 0, 0, 0, 3, 9, 9, 9]);
        d.push(
            &ControlMessage::Clear {
                session: SessionId(4),
            }
            .to_bytes(),
        );
        assert_eq!(
            d.poll(),
            Ok(Some(ControlMessage::Clear {
                session: SessionId(4)
            }))
        );
        assert_eq!(d.poll(), Ok(None));
    }

    #[test]
    fn oversize_length_is_rejected_before_the_payload_arrives() {
        let mut d = ControlDecoder::new();
        d.push(&[0, 0x10, 0x00, 0x10, 0x00, 0x01]);
        assert!(matches!(d.poll(), Err(DecodeError::TooLong { .. })));
    }

    #[test]
    fn too_many_points_names_the_field() {
        let mut body = vec![0u8; 8 + 8 + 8];
        body.push(AnnotationKind::Arrow as u8);
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&5000u16.to_be_bytes());
        let err = ControlMessage::decode_payload(types::ANNOTATE, &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Annotate.points: length 5000 exceeds limit 4096"
        );
    }
}
