//! The reference Farsight client: a QUIC connection to the relay with the control stream,
//! publishing groups of pictures and receiving them. The wearable, `farsight probe`, the
//! tests and the benchmarks all speak to the server through this crate.

mod connection;
mod credential;
mod publish;
mod reconnect;
mod tls;
mod watch;

pub use connection::{ConnectOptions, Connection, connect, quic_client_config};
pub use credential::{TokenError, resolve_token};
pub use publish::Publisher;
pub use reconnect::{Backoff, connect_with_backoff};
pub use tls::{Trust, fingerprint, parse_fingerprint};
pub use watch::{GroupEnd, Received, WatchEvent, Watcher};

use farsight_protocol::{DecodeError, ErrorCode};

pub use farsight_protocol::media::GROUP_DROPPED;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address or name: {0}")]
    Address(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("could not connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection lost: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("stream closed")]
    StreamClosed(#[from] quinn::ClosedStream),
    #[error("server sent malformed data: {0}")]
    Decode(#[from] DecodeError),
    #[error("server refused: {code:?}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("protocol violation: {0}")]
    Protocol(String),
}
