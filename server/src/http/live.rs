//! `/v1/live`: the console's WebSocket, for browsers (and networks) without QUIC. It is a
//! gateway: it connects to this server's own QUIC endpoint on the browser's behalf with the
//! browser's token, so authorisation and relay semantics are exactly the native ones.
//!
//! Framing (binary messages only): browser → server, one control frame per message;
//! server → browser, one control frame (first byte `0x00`) or one media object preceded by
//! its group's 21-byte stream header (first byte `0x4d`). See protocol/README.md.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use farsight_client::{
    ClientError, ConnectOptions, Connection, Received, Trust, WatchEvent, connect,
};
use farsight_protocol::control::ControlDecoder;
use farsight_protocol::{ControlMessage, ErrorCode, PROTOCOL_VERSION, SessionId};

use crate::Shared;

/// How long a browser has to send `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages up to this size get a typed `Error` when they are not one valid control frame
/// (at most 6 + 65 536 bytes); larger ones close the socket with WebSocket code 1009.
const MAX_WEBSOCKET_MESSAGE: usize = 1024 * 1024;
/// A frame older than this when its turn to go out comes is dropped with the rest of its
/// group: a slow browser skips ahead to the next key frame instead of falling behind.
const STALE_FRAME: Duration = Duration::from_millis(500);

/// Where the gateway reaches the QUIC relay, and the certificate it pins there.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub quic: SocketAddr,
    pub fingerprint: [u8; 32],
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
        Self { quic, fingerprint }
    }
}

pub async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_WEBSOCKET_MESSAGE)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE)
        .on_upgrade(move |socket| async move {
            let mut socket = socket;
            if let Err(refusal) = serve(&shared, &mut socket).await {
                tracing::debug!(code = ?refusal.code, message = %refusal.message, "console refused");
                let error = ControlMessage::Error {
                    code: refusal.code,
                    message: refusal.message,
                };
                let _ = socket.send(Message::Binary(error.to_bytes().into())).await;
            }
            let _ = socket.send(Message::Close(None)).await;
        })
}

/// Why the gateway ends a browser's connection, sent to it as an `Error`.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Refusal {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { code, message } => Refusal::new(code, message),
            other => {
                tracing::warn!(error = %other, "console gateway lost the relay");
                Refusal::new(ErrorCode::Internal, "relay unavailable")
            }
        }
    }
}

/// Decodes a browser message: exactly one whole control frame. `None` for an unknown type,
/// which the protocol says to skip.
fn decode_one(data: &[u8]) -> Result<Option<ControlMessage>, Refusal> {
    let mut decoder = ControlDecoder::new();
    decoder.push(data);
    let msg = decoder.poll().map_err(|e| {
        let code = match e {
            farsight_protocol::DecodeError::TooLong { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::Malformed,
        };
        Refusal::new(code, e.to_string())
    })?;
    if decoder.buffered() > 0 {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            "each WebSocket message must hold exactly one control frame",
        ));
    }
    Ok(msg)
}

/// What the browser sent next.
enum Incoming {
    Message(ControlMessage),
    /// A message of a type this server does not know, skipped.
    Skipped,
    Closed,
}

async fn next_frame(socket: &mut WebSocket) -> Result<Incoming, Refusal> {
    loop {
        match socket.recv().await {
            None | Some(Ok(Message::Close(_))) => return Ok(Incoming::Closed),
            // Over the size limit or broken: the socket layer has already closed it.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "console socket failed");
                return Ok(Incoming::Closed);
            }
            Some(Ok(Message::Binary(data))) => {
                return Ok(decode_one(&data)?.map_or(Incoming::Skipped, Incoming::Message));
            }
            Some(Ok(Message::Text(_))) => {
                return Err(Refusal::new(
                    ErrorCode::Malformed,
                    "binary messages only: one control frame each",
                ));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        }
    }
}

/// Connects the browser's `Hello` to the relay, then shuttles messages both ways.
async fn serve(shared: &Shared, socket: &mut WebSocket) -> Result<(), Refusal> {
    let hello = tokio::time::timeout(HELLO_TIMEOUT, next_frame(socket))
        .await
        .map_err(|_| Refusal::new(ErrorCode::Malformed, "no Hello within 10 s"))??;
    let (version, role, token) = match hello {
        Incoming::Message(ControlMessage::Hello {
            version,
            role,
            token,
            ..
        }) => (version, role, token),
        Incoming::Closed => return Ok(()),
        _ => {
            return Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                "the first message must be Hello",
            ));
        }
    };
    if version != PROTOCOL_VERSION {
        return Err(Refusal::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {version}; this server speaks {PROTOCOL_VERSION}"),
        ));
    }
    if !role.watches() {
        return Err(Refusal::new(
            ErrorCode::WrongRole,
            "the console is for agents and supervisors; wearables connect over QUIC",
        ));
    }
    let gateway = &shared.gateway;
    let mut conn = connect(&ConnectOptions {
        server: gateway.quic,
        server_name: "localhost".into(),
        trust: Trust::Fingerprint(gateway.fingerprint),
        role,
        token,
        resume: SessionId(0),
        receive_window: None,
    })
    .await?;
    let welcome = ControlMessage::Welcome {
        participant: conn.participant,
        session: conn.session,
        name: conn.name.clone(),
    };
    send(socket, welcome.to_bytes().into()).await?;
    let result = shuttle(socket, &mut conn).await;
    conn.close();
    result
}

async fn send(socket: &mut WebSocket, data: Bytes) -> Result<(), Refusal> {
    socket
        .send(Message::Binary(data))
        .await
        .map_err(|_| Refusal::new(ErrorCode::Internal, "closed"))
}

async fn shuttle(socket: &mut WebSocket, conn: &mut Connection) -> Result<(), Refusal> {
    let mut watcher = conn.watcher();
    // After a stale frame, nothing of its group goes out: the next key frame restarts.
    let mut skipping = false;
    loop {
        tokio::select! {
            from_browser = next_frame(socket) => match from_browser {
                Ok(Incoming::Message(ControlMessage::Hello { .. })) => {
                    return Err(Refusal::new(ErrorCode::UnexpectedMessage, "Hello was already sent"));
                }
                Ok(Incoming::Message(msg)) => conn.send(&msg).await?,
                Ok(Incoming::Skipped) => {}
                Ok(Incoming::Closed) => return Ok(()),
                Err(r) => return Err(r),
            },
            from_relay = conn.recv() => match from_relay {
                Some(Ok(msg)) => send(socket, msg.to_bytes().into()).await?,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Refusal::new(ErrorCode::Internal, "relay closed the connection")),
            },
            media = watcher.next() => match media {
                Some(WatchEvent::Object(r)) => {
                    if r.object.flags.keyframe {
                        skipping = false;
                    }
                    if !skipping && r.at.elapsed() > STALE_FRAME {
                        skipping = true;
                    }
                    if !skipping {
                        send(socket, media_message(&r)).await?;
                    }
                }
                Some(WatchEvent::End(_)) => {}
                None => return Err(Refusal::new(ErrorCode::Internal, "relay closed the connection")),
            },
        }
    }
}

/// One object with its group's stream header in front.
fn media_message(r: &Received) -> Bytes {
    let mut out = BytesMut::with_capacity(
        farsight_protocol::media::STREAM_HEADER_LEN + r.object.encoded_len(),
    );
    r.header.encode(&mut out);
    r.object.encode(&mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_must_hold_exactly_one_frame() {
        let join = ControlMessage::Join {
            session: SessionId(7),
        }
        .to_bytes();
        assert!(matches!(
            decode_one(&join),
            Ok(Some(ControlMessage::Join { .. }))
        ));
        let two = [join.clone(), join.clone()].concat();
        assert_eq!(decode_one(&two).unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(
            decode_one(&join[..join.len() - 1]).unwrap_err().code,
            ErrorCode::Malformed
        );
        let oversize = [0u8, 0x04, 0x00, 0x10, 0x00, 0x01];
        assert_eq!(decode_one(&oversize).unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        let g = Gateway::new("0.0.0.0:4433".parse().unwrap(), [0; 32]);
        assert_eq!(g.quic, "127.0.0.1:4433".parse().unwrap());
        let g = Gateway::new("[::]:4433".parse().unwrap(), [0; 32]);
        assert_eq!(g.quic, "[::1]:4433".parse().unwrap());
    }
}
