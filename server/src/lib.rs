//! The Farsight server: QUIC relay for wearables and agents, HTTP API, storage.
//!
//! `main.rs` parses the command line; [`start`] wires the parts together and is what tests
//! and benchmarks run in-process.

pub mod cert;
pub mod config;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod outreach;
pub mod probe;
pub mod quic;
pub mod relay;
pub mod sso;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::ServeConfig;
use farsight_store::Store;
use metrics::Metrics;
use relay::Relay;

/// What every connection and request handler shares.
#[derive(Debug)]
pub struct Shared {
    pub store: Store,
    /// Who may be called and when (also used for dispositions reported back).
    pub policy: farsight_outreach::policy::Policy,
    pub relay: Arc<Relay>,
    pub metrics: Arc<Metrics>,
    /// Unauthenticated connections and failed sign-ins, per address.
    pub limits: Arc<limits::AddressLimits>,
    /// How the console opens WebTransport.
    pub webtransport: gateway::WebTransportInfo,
    /// The console and API are served over TLS (with `--cert/--key`).
    pub https: bool,
    /// Single sign-on, when an `[oidc]` table configures it.
    pub sso: Option<sso::Sso>,
    /// What pages signed in by single sign-on present.
    pub tickets: Arc<sso::ticket::Tickets>,
}

/// A server started by [`start`]; dropping it does not stop it, call [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    pub quic_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub webtransport_addr: SocketAddr,
    /// SHA-256 of the certificate, hex: what clients pin.
    pub fingerprint: String,
    pub shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    accept: tokio::task::JoinHandle<()>,
    http: tokio::task::JoinHandle<()>,
    webtransport: gateway::webtransport::Listener,
    scheduler: Option<tokio::task::JoinHandle<()>>,
    audit_pruning: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Closes every connection and both listeners, waits for the connections' tasks to end
    /// (releasing the UDP port) and for the store to close.
    pub async fn shutdown(self) {
        self.endpoint.close(0u32.into(), b"server shutting down");
        self.shared.relay.close();
        self.webtransport.close().await;
        self.http.abort();
        let _ = self.http.await;
        if let Some(scheduler) = self.scheduler {
            scheduler.abort();
            let _ = scheduler.await;
        }
        self.audit_pruning.abort();
        let _ = self.audit_pruning.await;
        if tokio::time::timeout(Duration::from_secs(5), self.accept)
            .await
            .is_err()
        {
            tracing::warn!("connections still open five seconds after shutdown");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        self.shared.store.close().await;
    }
}

/// Why the server could not start; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating data directory {}: {source}", path.display())]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("opening database {url}: {source}")]
    Database {
        url: String,
        source: farsight_store::StoreError,
    },
    #[error(transparent)]
    Certificate(#[from] cert::CertError),
    #[error("QUIC reset key in {}: {source}", dir.display())]
    ResetKey {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("listening for {what} on {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: ListenError,
    },
    #[error("configuration: {0}")]
    Config(#[from] farsight_outreach::policy::PolicyError),
    #[error(
        "the console and API would be plain HTTP on {0}, beyond loopback: give --cert and --key \
         to serve HTTPS, or --insecure-http to serve plain HTTP there anyway (behind a proxy \
         that terminates TLS)"
    )]
    PlainHttp(SocketAddr),
}

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS for QUIC: {0}")]
    QuicTls(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    #[error("certificate: {0}")]
    Certificate(String),
}

fn listening(what: &'static str, addr: SocketAddr) -> impl FnOnce(ListenError) -> StartError {
    move |source| StartError::Listen { what, addr, source }
}

/// The relay's two UDP listeners, bound with the server's certificate.
struct Listeners {
    quic: quinn::Endpoint,
    quic_addr: SocketAddr,
    webtransport: gateway::webtransport::Listener,
    webtransport_addr: SocketAddr,
}

fn bind_relay(config: &ServeConfig, identity: &cert::Identity) -> Result<Listeners, StartError> {
    let reset_key =
        quic::reset_key::ResetKey::load_or_create(&config.data_dir).map_err(|source| {
            StartError::ResetKey {
                dir: config.data_dir.clone(),
                source,
            }
        })?;
    let quic_listen = config.quic_listen;
    let quic =
        quic::endpoint(identity, quic_listen, reset_key).map_err(listening("QUIC", quic_listen))?;
    let quic_addr = quic
        .local_addr()
        .map_err(|e| listening("QUIC", quic_listen)(e.into()))?;
    let wt_listen = config.webtransport_listen;
    let webtransport = gateway::webtransport::Listener::bind(identity, wt_listen)
        .map_err(listening("WebTransport", wt_listen))?;
    let webtransport_addr = webtransport
        .local_addr()
        .map_err(|e| listening("WebTransport", wt_listen)(e.into()))?;
    Ok(Listeners {
        quic,
        quic_addr,
        webtransport,
        webtransport_addr,
    })
}

/// Creates the data directory for its owner alone (0700): it holds the database, the keys
/// and the certificate. One that exists is left as it is, with a warning when others may
/// read it.
pub fn create_data_dir(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the data directory is readable by others; chmod 700 it"
                );
            }
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(path)
}

/// The data directory and the store in it (migrated).
async fn open_store(config: &ServeConfig) -> Result<Store, StartError> {
    create_data_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    Store::open(&config.database_url)
        .await
        .map_err(|source| StartError::Database {
            url: redact(&config.database_url),
            source,
        })
}

/// Serves the console and API: over TLS with the configured certificate, plain otherwise.
async fn serve_http(
    config: &ServeConfig,
    identity: &cert::Identity,
    shared: Arc<Shared>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), StartError> {
    let addr = config.http_listen;
    let failed = |e: ListenError| listening("HTTP", addr)(e);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| failed(e.into()))?;
    let bound = listener.local_addr().map_err(|e| failed(e.into()))?;
    let router = http::router(shared.clone());
    let task = if shared.https {
        let tls = http::tls::server_config(identity).map_err(|e| failed(e.into()))?;
        tokio::spawn(http::tls::serve(listener, tls, router))
    } else {
        tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        })
    };
    Ok((bound, task))
}

/// Opens the store (migrating it), loads or generates the certificate and starts listening.
pub async fn start(config: &ServeConfig) -> Result<Running, StartError> {
    if config.cert.is_none() && !config.http_listen.ip().is_loopback() && !config.insecure_http {
        return Err(StartError::PlainHttp(config.http_listen));
    }
    let store = open_store(config).await?;
    let identity = match &config.cert {
        Some((cert, key)) => cert::load(cert, key)?,
        None => cert::dev_identity(&config.data_dir)?,
    };
    let Listeners {
        quic: endpoint,
        quic_addr,
        mut webtransport,
        webtransport_addr,
    } = bind_relay(config, &identity)?;
    let webtransport_info = gateway::WebTransportInfo {
        port: webtransport_addr.port(),
        path: "/v1/live",
        certificate_sha256: config.cert.is_none().then(|| identity.fingerprint.clone()),
    };
    let policy = config.outreach.validate()?;
    let dialer = config
        .dialer
        .as_ref()
        .map(|d| (outreach::scheduler::Dialer::from_config(d), d.clone()));
    let metrics = Arc::new(Metrics::default());
    let relay_config = farsight_relay::Config {
        latency_budget: config.latency_budget,
        ..farsight_relay::Config::default()
    };
    let limits = Arc::new(limits::AddressLimits::default());
    let tickets = Arc::new(sso::ticket::Tickets::default());
    let shared = Arc::new(Shared {
        sso: config.oidc.clone().map(sso::Sso::new),
        tickets: tickets.clone(),
        https: config.cert.is_some(),
        policy: policy.clone(),
        relay: Relay::new(
            relay_config,
            store.clone(),
            metrics.clone(),
            limits.clone(),
            tickets,
        ),
        store,
        metrics,
        limits,
        webtransport: webtransport_info,
    });
    let (http_addr, http) = serve_http(config, &identity, shared.clone()).await?;
    let accept = tokio::spawn(quic::accept_loop(endpoint.clone(), shared.clone()));
    webtransport.serve(shared.clone());
    let scheduler = dialer.map(|(dialer, cfg)| {
        tokio::spawn(outreach::scheduler::run_forever(
            shared.store.clone(),
            policy,
            dialer,
            cfg.node()
                .map_or_else(outreach::scheduler::default_node, str::to_string),
            cfg.interval(),
        ))
    });
    let audit_pruning = tokio::spawn(prune_audit_forever(
        shared.store.clone(),
        config.audit_retention,
    ));
    Ok(Running {
        quic_addr,
        http_addr,
        webtransport_addr,
        fingerprint: identity.fingerprint,
        shared,
        endpoint,
        accept,
        http,
        webtransport,
        scheduler,
        audit_pruning,
    })
}

/// Removes audit entries older than the retention, at start and then hourly.
async fn prune_audit_forever(store: Store, retention: Duration) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3_600));
    loop {
        hourly.tick().await;
        let micros = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let before = farsight_store::now_micros().saturating_sub(micros);
        match store.prune_audit(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "audit entries past their retention removed"),
            Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
        }
    }
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}
