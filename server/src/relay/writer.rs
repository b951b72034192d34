//! A connection's writer: drains its outbox onto a stream transport (QUIC, WebTransport),
//! one unidirectional stream per group, and tells the relay what was written so it can
//! measure the watcher and drop what falls behind.

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use farsight_protocol::media::{GROUP_DROPPED, STREAM_HEADER_LEN};
use farsight_protocol::{ErrorCode, StreamHeader};
use farsight_relay::Input;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{GroupStep, MemberHandle, Outbound, WRITE_STALL};

/// How long a closing connection waits for the peer to read its last control messages.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A connection that carries groups on unidirectional streams.
pub trait Link: Clone + Send + Sync + 'static {
    type Group: GroupStream;
    fn open_group(&self) -> impl Future<Output = Option<Self::Group>> + Send;
    fn send_datagram(&self, datagram: Bytes);
    /// Closes with the code, or normally (0) with `None`.
    fn close(&self, code: Option<ErrorCode>, reason: &str);
}

/// One group's stream to a watcher.
pub trait GroupStream: Send + 'static {
    fn set_priority(&mut self, priority: i32);
    /// False once the stream or connection is gone. Takes the bytes whole so that a
    /// transport can send them without copying.
    fn write(&mut self, bytes: Bytes) -> impl Future<Output = bool> + Send;
    fn finish(self) -> impl Future<Output = ()> + Send;
    fn reset(self, code: u32);
}

/// The control stream's sending half: written in order, finished before a close.
pub trait ControlSend: AsyncWrite + Unpin + Send + 'static {
    /// Finishes the stream and waits (briefly) for the peer to have read it.
    fn finish_and_wait(&mut self) -> impl Future<Output = ()> + Send;
}

/// Drains the outbox until the connection closes.
pub async fn run<L: Link, C: ControlSend>(
    link: L,
    mut control: C,
    mut outbox: mpsc::UnboundedReceiver<Outbound>,
    member: &MemberHandle,
) {
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 256).await > 0 {
        let mut written = 0;
        for outbound in batch.drain(..) {
            match outbound {
                Outbound::Control(msg) => {
                    let bytes = msg.to_bytes();
                    match tokio::time::timeout(WRITE_STALL, control.write_all(&bytes)).await {
                        Ok(Ok(())) => written += 1,
                        Ok(Err(_)) => return,
                        Err(_) => {
                            member.stalled();
                            return link.close(Some(ErrorCode::TooSlow), "too slow");
                        }
                    }
                }
                Outbound::OpenGroup {
                    group,
                    priority,
                    steps,
                    reset,
                } => {
                    let task =
                        write_group(link.clone(), member.clone(), group, priority, steps, reset);
                    tokio::spawn(task);
                }
                // The relay sends a stream transport's media to its group tasks.
                Outbound::Media(_) => {}
                Outbound::Datagram(d) => link.send_datagram(d),
                Outbound::Close { code, reason } => {
                    tracing::info!(member = %member.member, ?code, %reason, "connection closed");
                    let _ = tokio::time::timeout(CLOSE_GRACE, control.finish_and_wait()).await;
                    return link.close(Some(code), &reason);
                }
                Outbound::Goodbye => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, control.finish_and_wait()).await;
                    return link.close(None, "");
                }
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

/// One group's stream: opened at its priority, the header then each object written as
/// the relay hands it over, finished when complete, reset when the relay drops it.
async fn write_group<L: Link>(
    link: L,
    relay: MemberHandle,
    group: StreamHeader,
    priority: i32,
    mut steps: mpsc::UnboundedReceiver<GroupStep>,
    reset: oneshot::Receiver<()>,
) {
    let Some(mut stream) = link.open_group().await else {
        return;
    };
    stream.set_priority(priority);
    let mut head = BytesMut::with_capacity(STREAM_HEADER_LEN);
    group.encode(&mut head);
    if !stream.write(head.freeze()).await {
        return;
    }
    let mut reset = Some(reset);
    loop {
        let step = tokio::select! {
            biased;
            () = reset_requested(&mut reset) => return stream.reset(GROUP_DROPPED),
            step = steps.recv() => step,
        };
        let Some(GroupStep::Write(object)) = step else {
            // Finished, or the connection is gone.
            return stream.finish().await;
        };
        let bytes = object.len();
        tokio::select! {
            biased;
            () = reset_requested(&mut reset) => return stream.reset(GROUP_DROPPED),
            ok = stream.write(object) => {
                if !ok {
                    return;
                }
                relay.step(Input::ObjectWritten {
                    member: relay.member,
                    group,
                    bytes,
                });
            }
        }
    }
}

/// Resolves when the relay resets the group; never once it let the group go (it finished
/// it, or dropped its handle).
async fn reset_requested(rx: &mut Option<oneshot::Receiver<()>>) {
    if let Some(r) = rx {
        if r.await.is_ok() {
            return;
        }
        *rx = None;
    }
    std::future::pending().await
}
