//! The QUIC side of the server: the endpoint (TLS 1.3, ALPN `farsight/1`) and one task per
//! connection that speaks the control stream and moves media through the relay.

mod connection;
pub mod reset_key;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Shared;
use crate::cert::Identity;

/// Per-connection bound on bytes queued for a watcher but not yet acknowledged. Small
/// enough that a slow watcher's writes block within the latency budget (so its old groups
/// are dropped) rather than piling up seconds of video in buffers.
const SEND_WINDOW: u64 = 1024 * 1024;

/// The relay's QUIC endpoint. `reset_key` signs stateless resets; keep it across restarts
/// ([`reset_key::ResetKey::load_or_create`]) so clients of a previous run learn at once that
/// their connection is gone.
pub fn endpoint(
    identity: &Identity,
    addr: SocketAddr,
    reset_key: reset_key::ResetKey,
) -> Result<quinn::Endpoint, crate::ListenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![farsight_protocol::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(256u32.into())
        .send_window(SEND_WINDOW)
        .keep_alive_interval(Some(Duration::from_secs(5)))
        .max_idle_timeout(Some(
            Duration::from_secs(15)
                .try_into()
                .expect("15 s is a valid idle timeout"),
        ));
    config.transport_config(Arc::new(transport));
    let socket = std::net::UdpSocket::bind(addr)?;
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
    endpoint_config.cid_generator(|| Box::new(reset_key::RandomCids));
    Ok(quinn::Endpoint::new(
        endpoint_config,
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?)
}

/// Accepts connections until the endpoint is closed, then waits for every connection's
/// task to finish, so that when this returns no connection holds the socket any more.
pub async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    while let Some(incoming) = endpoint.accept().await {
        // Refused before the TLS handshake, the costly part.
        let Some(unauthenticated) = shared.limits.admit(incoming.remote_address().ip()) else {
            shared.metrics.address_limited("quic", "unauthenticated");
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            match incoming.await {
                Ok(conn) => connection::run(conn, shared, unauthenticated).await,
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}
