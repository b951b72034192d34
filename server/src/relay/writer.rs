//! A connection's writer: drains its outbox onto a stream transport (QUIC, WebTransport),
//! one unidirectional stream per group, and tells the relay what was written so it can
//! measure the watcher and drop what falls behind.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use farsight_protocol::media::{GROUP_DROPPED, STREAM_HEADER_LEN};
use farsight_protocol::{ErrorCode, StreamHeader};
use farsight_relay::{Input, MediaOp};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{MemberHandle, Outbound};

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
    /// False once the stream or connection is gone.
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = bool> + Send;
    fn finish(self) -> impl Future<Output = ()> + Send;
    fn reset(self, code: u32);
}

/// The control stream's sending half: written in order, finished before a close.
pub trait ControlSend: AsyncWrite + Unpin + Send + 'static {
    /// Finishes the stream and waits (briefly) for the peer to have read it.
    fn finish_and_wait(&mut self) -> impl Future<Output = ()> + Send;
}

enum Step {
    Write(Bytes),
    Finish,
}

/// The writer's handle on one group's task.
struct GroupTask {
    steps: mpsc::UnboundedSender<Step>,
    reset: oneshot::Sender<()>,
}

/// Drains the outbox until the connection closes.
pub async fn run<L: Link, C: ControlSend>(
    link: L,
    mut control: C,
    mut outbox: mpsc::UnboundedReceiver<Outbound>,
    member: &MemberHandle,
) {
    let mut groups: HashMap<StreamHeader, GroupTask> = HashMap::new();
    let mut batch = Vec::new();
    while outbox.recv_many(&mut batch, 256).await > 0 {
        let mut written = 0;
        for outbound in batch.drain(..) {
            match outbound {
                Outbound::Control(msg) => {
                    if control.write_all(&msg.to_bytes()).await.is_err() {
                        return;
                    }
                    written += 1;
                }
                Outbound::Media(op) => media(&link, member, &mut groups, op),
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

fn media<L: Link>(
    link: &L,
    member: &MemberHandle,
    groups: &mut HashMap<StreamHeader, GroupTask>,
    op: MediaOp,
) {
    match op {
        MediaOp::Open { group, priority } => {
            // Finished groups stay until their task has written all: the relay may still
            // reset one the watcher is too slow to take.
            groups.retain(|_, task| !task.steps.is_closed());
            let task = spawn_group(link.clone(), member.clone(), group, priority);
            groups.insert(group, task);
        }
        MediaOp::Write { group, object } => {
            if let Some(task) = groups.get(&group) {
                let _ = task.steps.send(Step::Write(object));
            }
        }
        MediaOp::Finish { group } => {
            if let Some(task) = groups.get(&group) {
                let _ = task.steps.send(Step::Finish);
            }
        }
        MediaOp::Reset { group } => {
            if let Some(task) = groups.remove(&group) {
                let _ = task.reset.send(());
            }
        }
    }
}

fn spawn_group<L: Link>(
    link: L,
    relay: MemberHandle,
    group: StreamHeader,
    priority: i32,
) -> GroupTask {
    let (steps, mut rx) = mpsc::unbounded_channel();
    let (reset, reset_rx) = oneshot::channel();
    tokio::spawn(async move {
        let Some(mut stream) = link.open_group().await else {
            return;
        };
        stream.set_priority(priority);
        let mut head = BytesMut::with_capacity(STREAM_HEADER_LEN);
        group.encode(&mut head);
        if !stream.write(&head).await {
            return;
        }
        let mut reset_rx = Some(reset_rx);
        loop {
            let step = tokio::select! {
                biased;
                () = reset_requested(&mut reset_rx) => return stream.reset(GROUP_DROPPED),
                step = rx.recv() => step,
            };
            let Some(Step::Write(object)) = step else {
                // Finished, or the writer is gone with its connection.
                return stream.finish().await;
            };
            tokio::select! {
                biased;
                () = reset_requested(&mut reset_rx) => return stream.reset(GROUP_DROPPED),
                ok = stream.write(&object) => {
                    if !ok {
                        return;
                    }
                    relay.step(Input::ObjectWritten {
                        member: relay.member,
                        group,
                        bytes: object.len(),
                    });
                }
            }
        }
    });
    GroupTask { steps, reset }
}

/// Resolves when the writer resets the group; never once it let the group go (it finished
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
