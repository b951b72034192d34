//! The Farsight wire format and camera math, with no I/O.
//!
//! Both ends (server, wearable, reference client) share these types. Decoders take bytes and
//! return typed errors; nothing here touches a socket or a clock, so everything is testable
//! and fuzzable in isolation. `README.md` beside this crate documents every byte.

pub mod camera;
pub mod control;
pub mod datagram;
pub mod ids;
pub mod media;
pub mod wire;

pub use camera::{CameraModel, Intrinsics, Pose};
pub use control::{
    Annotate, AnnotationKind, ControlDecoder, ControlMessage, ErrorCode, Role, Style,
};
pub use datagram::PoseDatagram;
pub use ids::{AnnotationId, FrameSeq, GroupSeq, Micros, ParticipantId, SessionId, TrackId};
pub use media::{MediaDecoder, MediaEvent, Object, ObjectFlags, StreamHeader};
pub use wire::DecodeError;

/// ALPN protocol identifier negotiated by every QUIC connection.
pub const ALPN: &[u8] = b"farsight/1";
/// Protocol version carried in `Hello`; a server refuses any other.
pub const PROTOCOL_VERSION: u16 = 1;
