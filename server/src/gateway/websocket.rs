//! `/v1/live` over WebSocket, for browsers on networks that block UDP.
//!
//! Framing (binary messages only): browser → server, one control frame per message;
//! server → browser, one control frame (first byte `0x00`) or one media object preceded by
//! its group's 21-byte stream header (first byte `0x4d`). See protocol/README.md.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use farsight_protocol::control::ControlDecoder;
use farsight_protocol::media::STREAM_HEADER_LEN;
use farsight_protocol::{ControlMessage, ErrorCode, StreamHeader};
use farsight_relay::{Input, MediaOp};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::collections::HashSet;
use tokio::sync::mpsc;

use crate::Shared;
use crate::limits::Unauthenticated;
use crate::relay::control::Fatal;
use crate::relay::{MemberHandle, Outbound, Peer, WRITE_STALL};

/// Messages up to this size get a typed `Error` when they are not one valid control frame
/// (at most 6 + 65 536 bytes); larger ones close the socket with WebSocket code 1009.
const MAX_WEBSOCKET_MESSAGE: usize = 1024 * 1024;

pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(unauthenticated) = shared.limits.admit(remote.ip()) else {
        shared
            .metrics
            .address_limited("websocket", "unauthenticated");
        let message = "too many connections from this address that have not signed in";
        return (StatusCode::TOO_MANY_REQUESTS, message).into_response();
    };
    let peer = Peer {
        ip: remote.ip(),
        transport: "websocket",
    };
    ws.max_message_size(MAX_WEBSOCKET_MESSAGE)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE)
        .on_upgrade(
            move |socket| async move { serve(&shared, socket, peer, unauthenticated).await },
        )
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

async fn next_frame(socket: &mut SplitStream<WebSocket>) -> Result<Incoming, Fatal> {
    loop {
        match socket.next().await {
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

/// A browser is a member of the relay: its messages are fed in as they come, and the
/// relay's outbox is written to the socket.
async fn serve(shared: &Shared, socket: WebSocket, peer: Peer, unauthenticated: Unauthenticated) {
    let (member, outbox) = shared.relay.connect(peer, true, false);
    let (sink, mut stream) = socket.split();
    let reader = async {
        // Unauthenticated until the Hello is answered.
        let mut signing_in = Some(unauthenticated);
        loop {
            match next_frame(&mut stream).await {
                Ok(Incoming::Message(msg)) if signing_in.is_some() => {
                    member.hello(msg).await;
                    signing_in = None;
                }
                Ok(Incoming::Message(msg)) => member.control(msg).await,
                Ok(Incoming::Skipped) => {}
                Ok(Incoming::Closed) => return,
                Err(fatal) => {
                    // The relay sends the error and closes the socket.
                    member.fail(fatal.code, fatal.message);
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    tokio::select! {
        () = write_socket(sink, outbox, &member) => {}
        () = reader => {}
    }
}

/// Writes the outbox in order: control frames as they are, each object with its group's
/// stream header in front. Group ends are not signalled; a group the relay dropped is
/// skipped from there on.
async fn write_socket(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::UnboundedReceiver<Outbound>,
    member: &MemberHandle,
) {
    let mut groups = HashSet::new();
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 256).await > 0 {
        // A group dropped further on in this batch is not worth writing now.
        let dropped: HashSet<StreamHeader> = batch
            .iter()
            .filter_map(|o| match o {
                Outbound::Media(MediaOp::Reset { group }) => Some(*group),
                _ => None,
            })
            .collect();
        let mut written = 0;
        for outbound in batch.drain(..) {
            let (message, object) = match outbound {
                Outbound::Control(msg) => {
                    written += 1;
                    (Bytes::from(msg.to_bytes()), None)
                }
                Outbound::Media(MediaOp::Open { group, .. }) => {
                    groups.insert(group);
                    continue;
                }
                Outbound::Media(MediaOp::Write { group, object }) => {
                    if !groups.contains(&group) || dropped.contains(&group) {
                        continue;
                    }
                    (media_message(group, &object), Some((group, object.len())))
                }
                Outbound::Media(MediaOp::Finish { group } | MediaOp::Reset { group }) => {
                    groups.remove(&group);
                    continue;
                }
                // Pose datagrams are not carried: every object holds its frame's pose. Group
                // streams are for stream transports; a WebSocket gets each step as media.
                Outbound::Datagram(_) | Outbound::OpenGroup { .. } => continue,
                Outbound::Close { code, reason } => {
                    tracing::debug!(?code, %reason, "console closed");
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
                Outbound::Goodbye => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            };
            match tokio::time::timeout(WRITE_STALL, sink.send(Message::Binary(message))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => return member.stalled(),
            }
            if let Some((group, bytes)) = object {
                member.step(Input::ObjectWritten {
                    member: member.member,
                    group,
                    bytes,
                });
            }
        }
        if written > 0 {
            member.step(Input::ControlWritten {
                member: member.member,
                count: written,
            });
        }
    }
}

/// One object with its group's stream header in front.
fn media_message(group: StreamHeader, object: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(STREAM_HEADER_LEN + object.len());
    group.encode(&mut out);
    out.extend_from_slice(object);
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
