//! The browsers' way in: `/v1/live` over WebTransport (HTTP/3) or, where UDP is blocked,
//! WebSocket. Both are gateways: each browser connection becomes a native QUIC client of
//! this server's own relay, with the browser's token, so authorisation and relay semantics
//! are exactly those of native clients, and the browser speaks the same protocol bytes.

pub mod websocket;
pub mod webtransport;

use std::net::SocketAddr;
use std::time::Duration;

use farsight_client::{ClientError, ConnectOptions, Connection, Received, Trust, connect};
use farsight_protocol::{ControlMessage, ErrorCode, PROTOCOL_VERSION, SessionId};

pub use crate::quic::control::Fatal;

/// How long a browser has to send `Hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway reaches the QUIC relay, the certificate it pins there, and what the
/// console needs to open WebTransport.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub quic: SocketAddr,
    pub fingerprint: [u8; 32],
    pub webtransport: Option<WebTransportInfo>,
}

/// Told to the console by `GET /v1/console/config`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WebTransportInfo {
    pub port: u16,
    pub path: &'static str,
    /// The development certificate's SHA-256 (hex), which browsers accept only when pinned
    /// with `serverCertificateHashes`; `None` with a real certificate.
    pub certificate_sha256: Option<String>,
}

impl Gateway {
    /// The relay as seen from this host: an unspecified listen address becomes loopback.
    pub fn new(listen: SocketAddr, fingerprint: [u8; 32]) -> Self {
        let mut quic = listen;
        if quic.ip().is_unspecified() {
            quic.set_ip(match quic {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        Self {
            quic,
            fingerprint,
            webtransport: None,
        }
    }
}

/// A relay that refused the browser refuses it with the same code; any other trouble
/// reaching the relay is internal.
impl From<ClientError> for Fatal {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { code, message } => Fatal::new(code, message),
            other => {
                tracing::warn!(error = %other, "browser gateway lost the relay");
                Fatal::new(ErrorCode::Internal, "relay unavailable")
            }
        }
    }
}

/// Checks the browser's first message and connects to the relay with its token.
pub async fn open_relay(
    gateway: &Gateway,
    hello: Option<ControlMessage>,
) -> Result<Connection, Fatal> {
    let Some(ControlMessage::Hello {
        version,
        role,
        token,
        ..
    }) = hello
    else {
        return Err(Fatal::new(
            ErrorCode::UnexpectedMessage,
            "the first message must be Hello",
        ));
    };
    if version != PROTOCOL_VERSION {
        return Err(Fatal::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {version}; this server speaks {PROTOCOL_VERSION}"),
        ));
    }
    if !role.watches() {
        return Err(Fatal::new(
            ErrorCode::WrongRole,
            "the console is for agents and supervisors; wearables connect over QUIC",
        ));
    }
    Ok(connect(&ConnectOptions {
        server: gateway.quic,
        server_name: "localhost".into(),
        trust: Trust::Fingerprint(gateway.fingerprint),
        role,
        token,
        resume: SessionId(0),
        receive_window: None,
    })
    .await?)
}

/// The `Welcome` the relay gave the gateway, passed on to the browser.
pub fn welcome(conn: &Connection) -> ControlMessage {
    ControlMessage::Welcome {
        participant: conn.participant,
        session: conn.session,
        name: conn.name.clone(),
    }
}

/// A frame older than this when its turn to go out comes is dropped with the rest of its
/// group: a slow browser skips ahead to the next key frame instead of falling behind.
const STALE_FRAME: Duration = Duration::from_millis(500);

/// Whether a frame waited too long at the gateway to be worth sending.
pub fn is_stale(r: &Received) -> bool {
    r.at.elapsed() > STALE_FRAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let g = Gateway::new("0.0.0.0:4433".parse().unwrap(), [0; 32]);
        assert_eq!(g.quic, "127.0.0.1:4433".parse().unwrap());
        let g = Gateway::new("[::]:4433".parse().unwrap(), [0; 32]);
        assert_eq!(g.quic, "[::1]:4433".parse().unwrap());
    }
}
