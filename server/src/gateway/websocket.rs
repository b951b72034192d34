//! `/v1/live` over WebSocket, for browsers on networks that block UDP.
//!
//! Framing (binary messages only): browser → server, one control frame per message;
//! server → browser, one control frame (first byte `0x00`) or one media object preceded by
//! its group's 21-byte stream header (first byte `0x4d`). See protocol/README.md.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use farsight_client::{Connection, Received, WatchEvent};
use farsight_protocol::ControlMessage;
use farsight_protocol::ErrorCode;
use farsight_protocol::control::ControlDecoder;

use super::{Fatal, HELLO_TIMEOUT, is_stale};
use crate::Shared;

/// Messages up to this size get a typed `Error` when they are not one valid control frame
/// (at most 6 + 65 536 bytes); larger ones close the socket with WebSocket code 1009.
const MAX_WEBSOCKET_MESSAGE: usize = 1024 * 1024;

pub async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_WEBSOCKET_MESSAGE)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE)
        .on_upgrade(move |socket| async move {
            let mut socket = socket;
            if let Err(fatal) = serve(&shared, &mut socket).await {
                tracing::debug!(code = ?fatal.code, message = %fatal.message, "console refused");
                let error = fatal.to_message().to_bytes();
                let _ = socket.send(Message::Binary(error.into())).await;
            }
            let _ = socket.send(Message::Close(None)).await;
        })
}

/// Decodes a browser message: exactly one whole control frame. `None` for an unknown type,
/// which the protocol says to skip.
fn decode_one(data: &[u8]) -> Result<Option<ControlMessage>, Fatal> {
    let mut decoder = ControlDecoder::new();
    decoder.push(data);
    let msg = decoder.poll()?;
    if decoder.buffered() > 0 {
        return Err(Fatal::new(
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

async fn next_frame(socket: &mut WebSocket) -> Result<Incoming, Fatal> {
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
                return Err(Fatal::new(
                    ErrorCode::Malformed,
                    "binary messages only: one control frame each",
                ));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
        }
    }
}

/// Connects the browser's `Hello` to the relay, then shuttles messages both ways.
async fn serve(shared: &Shared, socket: &mut WebSocket) -> Result<(), Fatal> {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, next_frame(socket)).await {
        Err(_) => return Err(Fatal::new(ErrorCode::Malformed, "no Hello within 10 s")),
        Ok(Err(fatal)) => return Err(fatal),
        Ok(Ok(Incoming::Closed)) => return Ok(()),
        Ok(Ok(Incoming::Skipped)) => None,
        Ok(Ok(Incoming::Message(m))) => Some(m),
    };
    let mut conn = super::open_relay(&shared.gateway, hello).await?;
    send(socket, super::welcome(&conn).to_bytes().into()).await?;
    let result = shuttle(socket, &mut conn).await;
    conn.close();
    result
}

async fn send(socket: &mut WebSocket, data: Bytes) -> Result<(), Fatal> {
    socket
        .send(Message::Binary(data))
        .await
        .map_err(|_| Fatal::new(ErrorCode::Internal, "closed"))
}

async fn shuttle(socket: &mut WebSocket, conn: &mut Connection) -> Result<(), Fatal> {
    let mut watcher = conn.watcher();
    // After a stale frame, nothing of its group goes out: the next key frame restarts.
    let mut skipping = false;
    loop {
        tokio::select! {
            from_browser = next_frame(socket) => match from_browser {
                Ok(Incoming::Message(ControlMessage::Hello { .. })) => {
                    return Err(Fatal::new(ErrorCode::UnexpectedMessage, "Hello was already sent"));
                }
                Ok(Incoming::Message(msg)) => conn.send(&msg).await?,
                Ok(Incoming::Skipped) => {}
                Ok(Incoming::Closed) => return Ok(()),
                Err(r) => return Err(r),
            },
            from_relay = conn.recv() => match from_relay {
                Some(Ok(msg)) => send(socket, msg.to_bytes().into()).await?,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Fatal::new(ErrorCode::Internal, "relay closed the connection")),
            },
            media = watcher.next() => match media {
                Some(WatchEvent::Object(r)) => {
                    if r.object.flags.keyframe {
                        skipping = false;
                    }
                    if !skipping && is_stale(&r) {
                        skipping = true;
                    }
                    if !skipping {
                        send(socket, media_message(&r)).await?;
                    }
                }
                Some(WatchEvent::End(_)) => {}
                None => return Err(Fatal::new(ErrorCode::Internal, "relay closed the connection")),
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
    use farsight_protocol::SessionId;

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
}
