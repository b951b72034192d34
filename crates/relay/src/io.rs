//! What goes into the relay core and what comes out of it.

use bytes::Bytes;
use farsight_protocol::control::{DepthSource, Participant};
use farsight_protocol::{
    Annotate, AnnotationId, ControlMessage, ErrorCode, GroupSeq, Role, SessionId, StreamHeader,
};

use crate::{MemberId, StoredSession, Token, TokenId, TokenRefused};

/// An event from a transport or the store.
#[derive(Clone, Debug)]
pub enum Input {
    /// A connection was accepted; it has until the handshake deadline to say `Hello`.
    /// Browsers (WebTransport, WebSocket) may only watch.
    Connected { member: MemberId, browser: bool },
    /// Its first control message, with what the store knows of the token.
    Hello {
        member: MemberId,
        version: u16,
        role: Role,
        resume: SessionId,
        token: Result<Token, TokenRefused>,
    },
    /// The answer to an [`Output::Load`]: `None` when no such session exists.
    Loaded {
        member: MemberId,
        session: Option<StoredSession>,
    },
    /// Any later control message.
    Control {
        member: MemberId,
        msg: ControlMessage,
    },
    /// Bytes of a unidirectional stream the member opened (`stream` is its transport id).
    StreamData {
        member: MemberId,
        stream: u64,
        data: Bytes,
    },
    /// That stream ended, finished or reset.
    StreamEnd { member: MemberId, stream: u64 },
    /// A datagram from the member.
    Datagram { member: MemberId, datagram: Bytes },
    /// The transport wrote this many of the member's control messages.
    ControlWritten { member: MemberId, count: usize },
    /// The transport wrote one object of a group to the member.
    ObjectWritten {
        member: MemberId,
        group: StreamHeader,
        bytes: usize,
    },
    /// The transport found the member breaking the protocol (a control stream that does
    /// not decode) or stuck (`TooSlow`: it took nothing for a while): fatal, with this code.
    TransportError {
        member: MemberId,
        code: ErrorCode,
        message: String,
    },
    /// The connection is gone.
    Closed { member: MemberId },
}

/// What the store must look up or create before the relay goes on with a member.
#[derive(Clone, Debug, PartialEq)]
pub enum Load {
    /// A new session for a wearable's token.
    NewSession { owner: TokenId, name: String },
    /// An existing session, with its marks.
    Session(SessionId),
}

/// A write to the store. Transports apply these in order, before the outputs after them,
/// so that whatever was forwarded is durable.
#[derive(Clone, Debug, PartialEq)]
pub enum Persist {
    Joined {
        session: SessionId,
        participant: Participant,
        token: TokenId,
    },
    Left {
        session: SessionId,
        participant: MemberId,
    },
    Annotation(Annotate),
    Anchor {
        session: SessionId,
        id: AnnotationId,
        depth: DepthSource,
        points: Vec<[f32; 3]>,
    },
    Erase {
        session: SessionId,
        id: AnnotationId,
        by: MemberId,
    },
    Clear {
        session: SessionId,
        by: MemberId,
    },
    /// The session is over for everyone; `by` ended it.
    Ended {
        session: SessionId,
        by: MemberId,
    },
    LastGroup {
        session: SessionId,
        group: GroupSeq,
    },
}

/// One step of a group's stream to a watcher, keyed by the group's stream header.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaOp {
    /// Open the group's stream (write the header first) at this priority: newer is higher.
    Open { group: StreamHeader, priority: i32 },
    /// Write one encoded object, byte for byte as received.
    Write { group: StreamHeader, object: Bytes },
    /// The group is complete: finish the stream once its objects are written.
    Finish { group: StreamHeader },
    /// The watcher fell behind: reset the stream now with `GROUP_DROPPED`, unsent objects
    /// and all.
    Reset { group: StreamHeader },
}

/// Something for a transport or the store to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a control message to the member.
    Control {
        member: MemberId,
        msg: ControlMessage,
    },
    /// Close the member's connection with this code (0-free: always an [`ErrorCode`]) once
    /// the control messages before it are written.
    Close {
        member: MemberId,
        code: ErrorCode,
        reason: String,
    },
    /// Look the session up (or create it) and answer with [`Input::Loaded`] before passing
    /// on the member's next control message.
    Load { member: MemberId, load: Load },
    /// Write to the store.
    Persist(Persist),
    /// Stop reading a stream the member opened (STOP_SENDING with the code).
    StopStream {
        member: MemberId,
        stream: u64,
        code: ErrorCode,
    },
    /// A media step for a watcher.
    Media { member: MemberId, op: MediaOp },
    /// Send a datagram to the member, unreliably.
    Datagram { member: MemberId, datagram: Bytes },
}
