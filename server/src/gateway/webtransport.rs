//! `/v1/live` over WebTransport (HTTP/3), the console's first choice. The streams mirror
//! native QUIC: the browser opens one bidirectional control stream, and each group of
//! pictures arrives on its own unidirectional stream (stream header, then objects), reset
//! with `GROUP_DROPPED` when the browser falls behind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use farsight_client::{Connection, GROUP_DROPPED, GroupEnd, Received, WatchEvent};
use farsight_protocol::{ControlMessage, ErrorCode, GroupSeq};
use tokio::sync::mpsc;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, Identity, ServerConfig, VarInt};

use super::{Fatal, HELLO_TIMEOUT, is_stale};
use crate::Shared;
use crate::cert;
use crate::quic::control::ControlReader;

/// Frames queued for one group's stream before the group is given up (a second at 30 fps).
const GROUP_QUEUE: usize = 32;

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
    pub fn bind(identity: &cert::Identity, addr: SocketAddr) -> anyhow::Result<Self> {
        let chain = identity
            .chain
            .iter()
            .map(|c| wtransport::tls::Certificate::from_der(c.to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
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
    let request = match incoming.await {
        Ok(r) => r,
        Err(e) => return tracing::debug!(error = %e, "WebTransport handshake failed"),
    };
    if request.path() != "/v1/live" {
        return request.not_found().await;
    }
    match request.accept().await {
        Ok(session) => serve(&shared, session).await,
        Err(e) => tracing::debug!(error = %e, "WebTransport session failed"),
    }
}

async fn serve(shared: &Shared, session: wtransport::Connection) {
    let (mut send, recv) = match tokio::time::timeout(HELLO_TIMEOUT, session.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        _ => return,
    };
    let mut control = ControlReader::new(recv);
    let result = async {
        let hello = tokio::time::timeout(HELLO_TIMEOUT, control.next())
            .await
            .map_err(|_| Fatal::new(ErrorCode::Malformed, "no Hello within 10 s"))??;
        let mut conn = super::open_relay(&shared.gateway, hello).await?;
        write(&mut send, &super::welcome(&conn)).await?;
        let result = shuttle(&session, &mut control, &mut send, &mut conn).await;
        conn.close();
        result
    }
    .await;
    if let Err(fatal) = result {
        tracing::debug!(code = ?fatal.code, message = %fatal.message, "console refused");
        let _ = write(&mut send, &fatal.to_message()).await;
        let _ = send.finish().await;
    }
    session.close(VarInt::from_u32(0), b"");
}

async fn write(send: &mut wtransport::SendStream, msg: &ControlMessage) -> Result<(), Fatal> {
    send.write_all(&msg.to_bytes())
        .await
        .map_err(|_| Fatal::new(ErrorCode::Internal, "control stream closed"))
}

async fn shuttle(
    session: &wtransport::Connection,
    control: &mut ControlReader<wtransport::RecvStream>,
    send: &mut wtransport::SendStream,
    conn: &mut Connection,
) -> Result<(), Fatal> {
    let mut watcher = conn.watcher();
    let mut groups: HashMap<GroupSeq, mpsc::Sender<Received>> = HashMap::new();
    // The group last given up (the browser fell behind): its remaining frames are skipped,
    // not sent on a fresh stream that would start without its key frame.
    let mut given_up: Option<GroupSeq> = None;
    loop {
        tokio::select! {
            from_browser = control.next() => match from_browser? {
                Some(ControlMessage::Hello { .. }) => {
                    return Err(Fatal::new(ErrorCode::UnexpectedMessage, "Hello was already sent"));
                }
                Some(msg) => conn.send(&msg).await?,
                None => return Ok(()),
            },
            from_relay = conn.recv() => match from_relay {
                Some(Ok(msg)) => write(send, &msg).await?,
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Fatal::new(ErrorCode::Internal, "relay closed the connection")),
            },
            media = watcher.next() => match media {
                Some(WatchEvent::Object(r)) => {
                    let group = r.header.group;
                    if given_up == Some(group) {
                        continue;
                    }
                    let tx = groups
                        .entry(group)
                        .or_insert_with(|| spawn_group(session.clone()));
                    // A full queue means the browser is a second behind, a closed one that its
                    // stream was reset for staleness: either way the group is given up.
                    if tx.try_send(r).is_err() {
                        groups.remove(&group);
                        given_up = Some(group);
                    }
                }
                Some(WatchEvent::End(end)) => {
                    if let GroupEnd::Complete { header, .. } | GroupEnd::Dropped { header, .. } = end {
                        groups.remove(&header.group);
                    }
                }
                None => return Err(Fatal::new(ErrorCode::Internal, "relay closed the connection")),
            },
        }
    }
}

/// One group's stream to the browser: finished when the group ends (or is given up), reset
/// with `GROUP_DROPPED` when its frames go stale.
fn spawn_group(session: wtransport::Connection) -> mpsc::Sender<Received> {
    let (tx, mut rx) = mpsc::channel::<Received>(GROUP_QUEUE);
    tokio::spawn(async move {
        let Some(first) = rx.recv().await else { return };
        let Ok(opening) = session.open_uni().await else {
            return;
        };
        let Ok(mut stream) = opening.await else {
            return;
        };
        let mut out = BytesMut::new();
        first.header.encode(&mut out);
        let mut next = Some(first);
        while let Some(r) = next {
            if is_stale(&r) {
                let _ = stream.reset(VarInt::from_u32(GROUP_DROPPED));
                return;
            }
            r.object.encode(&mut out);
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
            next = rx.recv().await;
        }
        let _ = stream.finish().await;
    });
    tx
}
