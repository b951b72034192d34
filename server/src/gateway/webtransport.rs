//! `/v1/live` over WebTransport (HTTP/3), the console's first choice. The streams mirror
//! native QUIC: the browser opens one bidirectional control stream, and each group of
//! pictures arrives on its own unidirectional stream (stream header, then objects), reset
//! with `GROUP_DROPPED` when the browser falls behind.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use farsight_protocol::ErrorCode;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, Identity, ServerConfig, VarInt};

use crate::cert;
use crate::limits::Unauthenticated;
use crate::relay::control::ControlReader;
use crate::relay::serve::{MediaRecv, READ_CHUNK, read_control, read_stream};
use crate::relay::writer::{self, ControlSend, GroupStream, Link};
use crate::relay::{Outbound, Peer};
use crate::{ListenError, Shared};

/// The WebTransport listener: bound first (so its port can be announced), then serving.
pub struct Listener {
    endpoint: Arc<Endpoint<Server>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.endpoint.local_addr().ok())
            .finish()
    }
}

impl Listener {
    /// An HTTP/3 endpoint for WebTransport with the server's certificate.
    pub fn bind(identity: &cert::Identity, addr: SocketAddr) -> Result<Self, ListenError> {
        let chain = identity
            .chain
            .iter()
            .map(|c| wtransport::tls::Certificate::from_der(c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ListenError::Certificate(e.to_string()))?;
        let key = wtransport::tls::PrivateKey::from_der_pkcs8(identity.key.secret_der().to_vec());
        let identity = Identity::new(wtransport::tls::CertificateChain::new(chain), key);
        let config = ServerConfig::builder()
            .with_bind_address(addr)
            .with_identity(identity)
            .keep_alive_interval(Some(std::time::Duration::from_secs(5)))
            .build();
        Ok(Self {
            endpoint: Arc::new(Endpoint::server(config)?),
            task: None,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Accepts browser sessions on a task of its own.
    pub fn serve(&mut self, shared: Arc<Shared>) {
        let endpoint = self.endpoint.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let incoming = endpoint.accept().await;
                tokio::spawn(accept(incoming, shared.clone()));
            }
        }));
    }

    pub async fn close(mut self) {
        // wtransport's accept panics on a closed endpoint: stop accepting first.
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.endpoint
            .close(VarInt::from_u32(0), b"server shutting down");
    }
}

async fn accept(incoming: wtransport::endpoint::IncomingSession, shared: Arc<Shared>) {
    let ip = incoming.remote_address().ip();
    let Some(unauthenticated) = shared.limits.admit(ip) else {
        shared
            .metrics
            .address_limited("webtransport", "unauthenticated");
        return incoming.refuse();
    };
    let request = match incoming.await {
        Ok(r) => r,
        Err(e) => return tracing::debug!(error = %e, "WebTransport handshake failed"),
    };
    if request.path() != "/v1/live" {
        return request.not_found().await;
    }
    match request.accept().await {
        Ok(session) => serve(&shared, session, unauthenticated).await,
        Err(e) => tracing::debug!(error = %e, "WebTransport session failed"),
    }
}

#[derive(Clone, Debug)]
struct WebTransportLink(wtransport::Connection);

impl Link for WebTransportLink {
    type Group = wtransport::SendStream;

    async fn open_group(&self) -> Option<wtransport::SendStream> {
        self.0.open_uni().await.ok()?.await.ok()
    }

    /// Browsers get no pose datagrams: every object holds its frame's pose.
    fn send_datagram(&self, _: Bytes) {}

    fn close(&self, code: Option<ErrorCode>, reason: &str) {
        let code = code.map_or(0, |c| c as u32);
        self.0.close(VarInt::from_u32(code), reason.as_bytes());
    }
}

impl MediaRecv for wtransport::RecvStream {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        // A browser opens media streams only to be refused: a copy costs nothing here.
        let mut buf = vec![0u8; READ_CHUNK];
        match self.read(&mut buf).await {
            Ok(Some(n)) => {
                buf.truncate(n);
                Some(buf.into())
            }
            Ok(None) | Err(_) => None,
        }
    }
}

impl GroupStream for wtransport::SendStream {
    fn set_priority(&mut self, priority: i32) {
        wtransport::SendStream::set_priority(self, priority);
    }

    async fn write(&mut self, bytes: Bytes) -> bool {
        self.write_all(&bytes).await.is_ok()
    }

    async fn finish(mut self) {
        let _ = wtransport::SendStream::finish(&mut self).await;
    }

    fn reset(mut self, code: u32) {
        let _ = wtransport::SendStream::reset(&mut self, VarInt::from_u32(code));
    }
}

impl ControlSend for wtransport::SendStream {
    async fn finish_and_wait(&mut self) {
        if wtransport::SendStream::finish(self).await.is_ok() {
            let _ = self.stopped().await;
        }
    }
}

/// A browser is a member of the relay like a native client: the same control stream, a
/// group per unidirectional stream, no pose datagrams.
async fn serve(shared: &Shared, session: wtransport::Connection, unauthenticated: Unauthenticated) {
    let peer = Peer {
        ip: session.remote_address().ip(),
        transport: "webtransport",
    };
    let (member, mut outbox) = shared.relay.connect(peer, true, true);
    let streams = tokio::select! {
        streams = session.accept_bi() => streams,
        () = async {
            while let Some(outbound) = outbox.recv().await {
                if let Outbound::Close { code, reason } = outbound {
                    return session.close(VarInt::from_u32(code as u32), reason.as_bytes());
                }
            }
        } => return,
    };
    let Ok((send, recv)) = streams else {
        return;
    };
    let mut reader = ControlReader::new(recv);
    tokio::select! {
        () = writer::run(WebTransportLink(session.clone()), send, outbox, &member) => {}
        () = async {
            read_control(&mut reader, &member, unauthenticated).await;
            std::future::pending::<()>().await
        } => {}
        () = async {
            while let Ok(recv) = session.accept_uni().await {
                let stream = recv.id().into_u64();
                tokio::spawn(read_stream(recv, stream, member.clone(), |recv, stop| {
                    recv.stop(VarInt::from_u32(stop.code as u32));
                }));
            }
        } => {}
    }
}
