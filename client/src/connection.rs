//! Connecting, the handshake and the control stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use farsight_protocol::control::ControlDecoder;
use farsight_protocol::{ControlMessage, PROTOCOL_VERSION, ParticipantId, Role, SessionId};
use tokio::sync::{Mutex, mpsc};

use crate::tls::{Trust, client_config};
use crate::{ClientError, Publisher, Watcher};

/// Largest chunk read from the control stream at once.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub server: SocketAddr,
    /// TLS server name; the development certificate is issued for `localhost`.
    pub server_name: String,
    pub trust: Trust,
    pub role: Role,
    pub token: String,
    /// A session to resume after a reconnect (wearables); `SessionId(0)` starts a new one.
    pub resume: SessionId,
    /// Bytes this client lets the server have in flight towards it (flow control); `None`
    /// keeps quinn's default. A small window makes a slow reader push back on the relay.
    pub receive_window: Option<u32>,
}

/// An established, authenticated connection.
#[derive(Debug)]
pub struct Connection {
    conn: quinn::Connection,
    // Kept so the endpoint's socket lives as long as the connection.
    _endpoint: quinn::Endpoint,
    control_send: Arc<Mutex<quinn::SendStream>>,
    control_rx: mpsc::Receiver<Result<ControlMessage, ClientError>>,
    pub participant: ParticipantId,
    pub session: SessionId,
    pub name: String,
}

/// Connects, sends `Hello` and waits for `Welcome`. A refusal comes back as
/// [`ClientError::Refused`] with the server's error code.
pub async fn connect(opts: &ConnectOptions) -> Result<Connection, ClientError> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(Duration::from_secs(2)));
    transport.max_idle_timeout(Some(
        Duration::from_secs(10)
            .try_into()
            .expect("10 s is a valid idle timeout"),
    ));
    if let Some(window) = opts.receive_window {
        transport.receive_window(window.into());
        transport.stream_receive_window(window.into());
    }
    let mut config = quic_client_config(&opts.trust)?;
    config.transport_config(Arc::new(transport));

    let bind: SocketAddr = if opts.server.is_ipv6() {
        "[::]:0".parse().expect("literal address")
    } else {
        "0.0.0.0:0".parse().expect("literal address")
    };
    let endpoint =
        quinn::Endpoint::client(bind).map_err(|e| ClientError::Address(e.to_string()))?;
    let conn = endpoint
        .connect_with(config, opts.server, &opts.server_name)?
        .await?;

    let (mut send, recv) = conn.open_bi().await?;
    let hello = ControlMessage::Hello {
        version: PROTOCOL_VERSION,
        role: opts.role,
        token: opts.token.clone(),
        resume: opts.resume,
    };
    send.write_all(&hello.to_bytes()).await?;

    let (tx, mut control_rx) = mpsc::channel(256);
    tokio::spawn(read_control(recv, tx));
    let (participant, session, name) = match control_rx.recv().await {
        Some(Ok(ControlMessage::Welcome {
            participant,
            session,
            name,
        })) => (participant, session, name),
        Some(Ok(ControlMessage::Error { code, message })) => {
            return Err(ClientError::Refused { code, message });
        }
        Some(Ok(other)) => {
            return Err(ClientError::Protocol(format!(
                "expected Welcome, got {other:?}"
            )));
        }
        Some(Err(e)) => return Err(e),
        None => return Err(conn.closed().await.into()),
    };
    Ok(Connection {
        conn,
        _endpoint: endpoint,
        control_send: Arc::new(Mutex::new(send)),
        control_rx,
        participant,
        session,
        name,
    })
}

/// A quinn client configuration speaking TLS 1.3 with ALPN `farsight/1`, for callers that
/// drive the protocol themselves.
pub fn quic_client_config(trust: &Trust) -> Result<quinn::ClientConfig, ClientError> {
    let tls = client_config(trust)?;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    Ok(quinn::ClientConfig::new(Arc::new(quic)))
}

async fn read_control(
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<Result<ControlMessage, ClientError>>,
) {
    let mut decoder = ControlDecoder::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match recv.read(&mut buf).await {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        decoder.push(&buf[..n]);
        loop {
            match decoder.poll() {
                Ok(Some(msg)) => {
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        }
    }
}

impl Connection {
    /// Sends one control message.
    pub async fn send(&self, msg: &ControlMessage) -> Result<(), ClientError> {
        self.send_raw(&msg.to_bytes()).await
    }

    /// Writes raw bytes on the control stream (tests use it to send malformed input).
    pub async fn send_raw(&self, bytes: &[u8]) -> Result<(), ClientError> {
        self.control_send.lock().await.write_all(bytes).await?;
        Ok(())
    }

    /// The next control message from the server; `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<Result<ControlMessage, ClientError>> {
        self.control_rx.recv().await
    }

    /// Like [`recv`](Self::recv) but gives up after `timeout`.
    pub async fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<ControlMessage, ClientError>> {
        tokio::time::timeout(timeout, self.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the first control message matching `pick`, skipping others.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ControlMessage) -> Option<T>,
    ) -> Result<T, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_timeout(left).await {
                Some(Ok(msg)) => {
                    if let Some(found) = pick(&msg) {
                        return Ok(found);
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(ClientError::Protocol(
                        "control stream ended or timed out while waiting".into(),
                    ));
                }
            }
        }
    }

    /// Joins a session as a watcher and waits for `Joined`.
    pub async fn join(&mut self, session: SessionId) -> Result<(), ClientError> {
        self.send(&ControlMessage::Join { session }).await?;
        self.wait_for(Duration::from_secs(10), |m| match m {
            ControlMessage::Joined { session: s, .. } if *s == session => Some(Ok(())),
            ControlMessage::Error { code, message } => Some(Err(ClientError::Refused {
                code: *code,
                message: message.clone(),
            })),
            _ => None,
        })
        .await?
    }

    /// A publisher for this wearable's session.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.conn.clone(), self.session)
    }

    /// Starts receiving the groups the server sends on this connection.
    pub fn watcher(&self) -> Watcher {
        Watcher::spawn(self.conn.clone(), None)
    }

    /// Like [`watcher`](Self::watcher), but reads at most `bytes_per_second`: a watcher on
    /// a slow link, for tests and benchmarks of the relay's drop policy.
    pub fn throttled_watcher(&self, bytes_per_second: u64) -> Watcher {
        Watcher::spawn(self.conn.clone(), Some(bytes_per_second))
    }

    /// The underlying QUIC connection (datagrams, statistics, raw streams in tests).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }

    pub fn close(&self) {
        self.conn.close(0u32.into(), b"bye");
    }
}
