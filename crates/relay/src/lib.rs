//! The relay core: live sessions, their members, the video groups and how each watcher gets
//! them, and who may send what. Sans-IO in the manner of quinn-proto and str0m: one [`Relay`]
//! value driven by [`Relay::handle`] and [`Relay::handle_timeout`], with the time passed in,
//! and drained by [`Relay::poll_output`]. It reads no clock, owns no socket and takes no lock;
//! the transports (QUIC, WebTransport, WebSocket) move bytes and execute its outputs.

mod authorize;
mod io;
mod member;
mod relay;
mod schedule;
mod session;
#[cfg(test)]
mod tests;

pub use authorize::{MessageKind, Scope, authorize};
pub use io::{Input, Load, MediaOp, Output, Persist};
pub use relay::{Config, Relay, SessionView, Stats};
pub use schedule::{BitrateGovernor, MIN_BITRATE, ThroughputMeter, should_drop};

use farsight_protocol::control::DepthSource;
use farsight_protocol::{Annotate, ParticipantId, Role, SessionId};

/// A connection, as the relay knows it: one participant each.
pub type MemberId = ParticipantId;

/// The row of the token a connection signed in with (its id is the store's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenId(pub i64);

/// What the store knows of the token in a `Hello`.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub id: TokenId,
    /// The protocol role the token was issued for; `None` for tokens that cannot connect.
    pub role: Option<Role>,
    /// The participant's display name.
    pub name: String,
    /// The one session the token may take part in, when it is limited to one: a wearable
    /// may only resume it, a watcher only join it.
    pub session: Option<SessionId>,
}

/// Why the store did not accept the token in a `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefused {
    Unknown,
    Revoked,
    Expired,
}

impl TokenRefused {
    pub fn message(self) -> &'static str {
        match self {
            TokenRefused::Unknown => "unknown token",
            TokenRefused::Revoked => "the token was revoked",
            TokenRefused::Expired => "the token has expired",
        }
    }
}

/// Where a wearable anchored a mark.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchor {
    pub depth: DepthSource,
    pub points: Vec<[f32; 3]>,
}

/// A mark on screen, replayed to whoever joins.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub annotate: Annotate,
    pub anchor: Option<Anchor>,
}

/// A session as stored, loaded when it becomes live on this node.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSession {
    pub id: SessionId,
    pub name: String,
    /// The token of the wearable that publishes it.
    pub owner: TokenId,
    pub ended: bool,
    /// The marks on screen, oldest first.
    pub marks: Vec<Mark>,
}
