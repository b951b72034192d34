//! One native QUIC connection as a member of the relay: the control stream, the media
//! streams and datagrams it sends, and a writer for what the relay sends it.

use std::sync::Arc;

use bytes::Bytes;
use farsight_protocol::ErrorCode;
use farsight_relay::Input;
use tokio::sync::mpsc;

use crate::Shared;
use crate::limits::Unauthenticated;
use crate::relay::control::ControlReader;
use crate::relay::serve::{MediaRecv, READ_CHUNK, read_control, read_stream};
use crate::relay::writer::{self, ControlSend, GroupStream, Link};
use crate::relay::{MemberHandle, Outbound, Peer};

#[derive(Clone, Debug)]
struct QuicLink(quinn::Connection);

impl Link for QuicLink {
    type Group = quinn::SendStream;

    async fn open_group(&self) -> Option<quinn::SendStream> {
        self.0.open_uni().await.ok()
    }

    fn send_datagram(&self, datagram: Bytes) {
        // Poses are unreliable by design: a full buffer loses one, the next replaces it.
        let _ = self.0.send_datagram(datagram);
    }

    fn close(&self, code: Option<ErrorCode>, reason: &str) {
        self.0
            .close(code.map_or(0, |c| c as u32).into(), reason.as_bytes());
    }
}

impl GroupStream for quinn::SendStream {
    fn set_priority(&mut self, priority: i32) {
        let _ = quinn::SendStream::set_priority(self, priority);
    }

    async fn write(&mut self, bytes: Bytes) -> bool {
        self.write_chunk(bytes).await.is_ok()
    }

    async fn finish(mut self) {
        let _ = quinn::SendStream::finish(&mut self);
    }

    fn reset(mut self, code: u32) {
        let _ = quinn::SendStream::reset(&mut self, code.into());
    }
}

impl MediaRecv for quinn::RecvStream {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        // Ordered chunks straight from quinn's buffers: nothing is copied.
        match self.read_chunk(READ_CHUNK, true).await {
            Ok(Some(chunk)) => Some(chunk.bytes),
            Ok(None) | Err(_) => None,
        }
    }
}

impl ControlSend for quinn::SendStream {
    async fn finish_and_wait(&mut self) {
        if quinn::SendStream::finish(self).is_ok() {
            let _ = self.stopped().await;
        }
    }
}

pub async fn run(conn: quinn::Connection, shared: Arc<Shared>, unauthenticated: Unauthenticated) {
    let remote = conn.remote_address();
    let peer = Peer {
        ip: remote.ip(),
        transport: "quic",
    };
    let (member, mut outbox) = shared.relay.connect(peer, false, true);
    // The control stream comes first; the relay closes a connection that is too slow to
    // open it and say Hello.
    let streams = tokio::select! {
        streams = conn.accept_bi() => streams,
        (code, reason) = closed_by_relay(&mut outbox) => {
            conn.close((code as u32).into(), reason.as_bytes());
            return tracing::info!(%remote, ?code, %reason, "connection closed");
        }
    };
    let Ok((send, recv)) = streams else {
        return;
    };
    let mut reader = ControlReader::new(recv);
    let link = QuicLink(conn.clone());
    tokio::select! {
        () = writer::run(link, send, outbox, &member) => {}
        () = async {
            read_control(&mut reader, &member, unauthenticated).await;
            std::future::pending::<()>().await
        } => {}
        () = receive_streams(&conn, &member) => {}
        () = receive_datagrams(&conn, &member) => {}
    }
    tracing::debug!(%remote, member = %member.member, "connection ended");
}

/// Waits for the relay's `Close` before the control stream exists (whatever else it sent
/// cannot be written without one).
async fn closed_by_relay(outbox: &mut mpsc::UnboundedReceiver<Outbound>) -> (ErrorCode, String) {
    while let Some(outbound) = outbox.recv().await {
        if let Outbound::Close { code, reason } = outbound {
            return (code, reason);
        }
    }
    std::future::pending().await
}

async fn receive_streams(conn: &quinn::Connection, member: &MemberHandle) {
    while let Ok(recv) = conn.accept_uni().await {
        let stream = recv.id().index();
        tokio::spawn(read_stream(
            recv,
            stream,
            member.clone(),
            |mut recv, stop| {
                let _ = recv.stop((stop.code as u32).into());
            },
        ));
    }
}

async fn receive_datagrams(conn: &quinn::Connection, member: &MemberHandle) {
    while let Ok(datagram) = conn.read_datagram().await {
        member.step(Input::Datagram {
            member: member.member,
            datagram,
        });
    }
}
