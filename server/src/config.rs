//! Configuration: defaults that work with no flags, overridden by an optional TOML file,
//! then by `FARSIGHT_*` environment variables and flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use farsight_outreach::policy::PolicyConfig;

use crate::sso::SsoConfig;

/// Options every subcommand that touches storage shares.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StorageArgs {
    /// TOML file with any of the `serve` options (keys as the long flags, with underscores).
    #[arg(long, env = "FARSIGHT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite file and the development certificate.
    #[arg(long, env = "FARSIGHT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; default: SQLite in the data directory.
    #[arg(long, env = "FARSIGHT_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

#[derive(clap::Args, Clone, Debug, Default)]
pub struct ServeArgs {
    /// UDP address for QUIC (wearables and agents).
    #[arg(long, env = "FARSIGHT_QUIC_LISTEN")]
    pub quic_listen: Option<SocketAddr>,
    /// TCP address for HTTP: health, metrics, the JSON API and the console.
    #[arg(long, env = "FARSIGHT_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// UDP address for WebTransport (HTTP/3), the console's link to the relay.
    #[arg(long, env = "FARSIGHT_WEBTRANSPORT_LISTEN")]
    pub webtransport_listen: Option<SocketAddr>,
    /// PEM certificate chain; without it a development certificate is generated.
    #[arg(long, env = "FARSIGHT_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key for `--cert`.
    #[arg(long, env = "FARSIGHT_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// How far behind live a watcher may fall before its older groups are dropped.
    #[arg(long, env = "FARSIGHT_LATENCY_BUDGET_MS")]
    pub latency_budget_ms: Option<u64>,
    /// Serve the console and API as plain HTTP on an address beyond loopback (behind a
    /// proxy that terminates TLS). Without it, such an address needs --cert and --key.
    #[arg(long, env = "FARSIGHT_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// How many days the audit log keeps an entry (default 365).
    #[arg(long, env = "FARSIGHT_AUDIT_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub audit_retention_days: Option<u32>,
}

/// How planned calls are placed, the `[dialer]` table: `kind` says which dialer, and each
/// kind has its own required fields, so a missing one is a parse error that names it.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DialerConfig {
    /// Posts each call, signed, to `url`; the platform dials and reports back.
    Webhook {
        url: String,
        secret: String,
        /// How often `farsight serve` plans and dials.
        #[serde(default = "default_interval")]
        interval_seconds: u64,
        /// This scheduler's name in the call records (default: the host name).
        node: Option<String>,
    },
    /// Rings `agent_uri` at `agent_addr`, then the customer's number through the trunk at
    /// `trunk`, and joins them (third-party call control).
    Sip {
        /// The trunk or PBX that reaches customers, `HOST:PORT`.
        trunk: SocketAddr,
        /// The domain of customers' URIs, `sip:+NUMBER@DOMAIN` (default: the trunk's host).
        domain: Option<String>,
        /// `udp` (default) or `tcp`.
        transport: Option<SipTransport>,
        /// Digest credentials for the trunk.
        username: Option<String>,
        password: Option<String>,
        /// The agent's phone.
        agent_uri: String,
        agent_addr: SocketAddr,
        /// Ring the customer this long before giving up (default 30).
        no_answer_seconds: Option<u64>,
        #[serde(default = "default_interval")]
        interval_seconds: u64,
        node: Option<String>,
    },
}

/// How the SIP dialer reaches the trunk, as the configuration file spells it.
#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SipTransport {
    Udp,
    Tcp,
}

impl DialerConfig {
    /// How often `farsight serve` plans and dials.
    pub fn interval(&self) -> Duration {
        let (DialerConfig::Webhook {
            interval_seconds, ..
        }
        | DialerConfig::Sip {
            interval_seconds, ..
        }) = self;
        Duration::from_secs((*interval_seconds).max(1))
    }

    /// This scheduler's name in the call records, when configured.
    pub fn node(&self) -> Option<&str> {
        let (DialerConfig::Webhook { node, .. } | DialerConfig::Sip { node, .. }) = self;
        node.as_deref()
    }
}

fn default_interval() -> u64 {
    60
}

/// The file form: every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    outreach: Option<PolicyConfig>,
    oidc: Option<SsoConfig>,
    dialer: Option<DialerConfig>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    quic_listen: Option<SocketAddr>,
    http_listen: Option<SocketAddr>,
    webtransport_listen: Option<SocketAddr>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    latency_budget_ms: Option<u64>,
    audit_retention_days: Option<u32>,
    insecure_http: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub quic_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub webtransport_listen: SocketAddr,
    pub cert: Option<(PathBuf, PathBuf)>,
    pub latency_budget: Duration,
    /// How long the audit log keeps an entry.
    pub audit_retention: Duration,
    /// Plain HTTP is allowed beyond loopback.
    pub insecure_http: bool,
    pub outreach: PolicyConfig,
    pub dialer: Option<DialerConfig>,
    /// Single sign-on for agents and supervisors (the `[oidc]` table).
    pub oidc: Option<SsoConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("cert and key must be given together")]
    CertWithoutKey,
}

pub const DEFAULT_QUIC_LISTEN: &str = "0.0.0.0:4433";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// Beside the HTTP port: the console reaches both from the same place.
pub const DEFAULT_WEBTRANSPORT_LISTEN: &str = "127.0.0.1:4434";
pub const DEFAULT_LATENCY_BUDGET: Duration = Duration::from_millis(500);
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(365 * 86_400);

fn read_file(path: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

impl StorageArgs {
    /// The data directory and database URL after file and defaults.
    pub fn resolve(&self) -> Result<(PathBuf, String), ConfigError> {
        let file = read_file(self.config.as_deref())?;
        Ok(self.resolve_with(&file))
    }

    /// The outreach policy and dialer from the configuration file (defaults without one).
    pub fn outreach(&self) -> Result<(PolicyConfig, Option<DialerConfig>), ConfigError> {
        let file = read_file(self.config.as_deref())?;
        Ok((file.outreach.unwrap_or_default(), file.dialer))
    }

    fn resolve_with(&self, file: &FileConfig) -> (PathBuf, String) {
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("farsight-data"));
        let database_url = self
            .database_url
            .clone()
            .or(file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("farsight.db").display()));
        (data_dir, database_url)
    }
}

impl ServeConfig {
    pub fn resolve(storage: &StorageArgs, serve: &ServeArgs) -> Result<Self, ConfigError> {
        let file = read_file(storage.config.as_deref())?;
        let (data_dir, database_url) = storage.resolve_with(&file);
        let cert = match (
            serve.cert.clone().or(file.cert),
            serve.key.clone().or(file.key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError::CertWithoutKey),
        };
        Ok(Self {
            data_dir,
            database_url,
            quic_listen: serve
                .quic_listen
                .or(file.quic_listen)
                .unwrap_or_else(|| DEFAULT_QUIC_LISTEN.parse().expect("valid literal")),
            http_listen: serve
                .http_listen
                .or(file.http_listen)
                .unwrap_or_else(|| DEFAULT_HTTP_LISTEN.parse().expect("valid literal")),
            webtransport_listen: serve
                .webtransport_listen
                .or(file.webtransport_listen)
                .unwrap_or_else(|| DEFAULT_WEBTRANSPORT_LISTEN.parse().expect("valid literal")),
            cert,
            latency_budget: serve
                .latency_budget_ms
                .or(file.latency_budget_ms)
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_LATENCY_BUDGET),
            audit_retention: serve
                .audit_retention_days
                .or(file.audit_retention_days)
                .map_or(DEFAULT_AUDIT_RETENTION, |days| {
                    Duration::from_secs(u64::from(days.max(1)) * 86_400)
                }),
            insecure_http: serve.insecure_http || file.insecure_http.unwrap_or(false),
            outreach: file.outreach.unwrap_or_default(),
            dialer: file.dialer,
            oidc: file.oidc,
        })
    }

    /// Loopback, ephemeral ports, a given data directory: for tests and benchmarks.
    pub fn ephemeral(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            database_url: format!("sqlite://{}", data_dir.join("farsight.db").display()),
            quic_listen: "127.0.0.1:0".parse().expect("valid literal"),
            http_listen: "127.0.0.1:0".parse().expect("valid literal"),
            webtransport_listen: "127.0.0.1:0".parse().expect("valid literal"),
            cert: None,
            latency_budget: DEFAULT_LATENCY_BUDGET,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            insecure_http: false,
            outreach: PolicyConfig::default(),
            dialer: None,
            oidc: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("farsight.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/fs\"\nlatency_budget_ms = 250\nhttp_listen = \"0.0.0.0:9000\"\n",
        )
        .expect("write");
        let storage = StorageArgs {
            config: Some(path),
            ..Default::default()
        };
        let serve = ServeArgs {
            http_listen: Some("127.0.0.1:9100".parse().expect("addr")),
            ..Default::default()
        };
        let c = ServeConfig::resolve(&storage, &serve).expect("resolve");
        assert_eq!(c.data_dir, PathBuf::from("/srv/fs"));
        assert_eq!(c.database_url, "sqlite:///srv/fs/farsight.db");
        assert_eq!(c.latency_budget, Duration::from_millis(250));
        assert_eq!(c.http_listen.port(), 9100);
        assert_eq!(c.quic_listen.port(), 4433);
    }

    fn dialer_from(toml: &str) -> Result<Option<DialerConfig>, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("farsight.toml");
        std::fs::write(&path, toml).expect("write");
        let storage = StorageArgs {
            config: Some(path),
            ..Default::default()
        };
        storage.outreach().map(|(_, dialer)| dialer)
    }

    #[test]
    fn documented_dialer_tables_parse_into_their_kind() {
        let webhook = dialer_from(
            "[dialer]\nkind = \"webhook\"\nurl = \"https://cc.example/calls\"\nsecret = \"s\"\ninterval_seconds = 60\n",
        )
        .expect("webhook parses");
        assert_eq!(
            webhook,
            Some(DialerConfig::Webhook {
                url: "https://cc.example/calls".into(),
                secret: "s".into(),
                interval_seconds: 60,
                node: None,
            })
        );
        let sip = dialer_from(
            "[dialer]\nkind = \"sip\"\ntrunk = \"10.0.0.5:5060\"\ntransport = \"tcp\"\nagent_uri = \"sip:outreach@pbx.example\"\nagent_addr = \"10.0.0.5:5060\"\n",
        )
        .expect("sip parses")
        .expect("a dialer");
        assert!(matches!(
            sip,
            DialerConfig::Sip {
                transport: Some(SipTransport::Tcp),
                interval_seconds: 60,
                ..
            }
        ));
        assert_eq!(sip.interval(), Duration::from_secs(60));
    }

    #[test]
    fn a_dialer_without_its_kinds_required_field_is_an_error() {
        let err = dialer_from("[dialer]\nkind = \"webhook\"\nurl = \"https://cc.example\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret"), "{err}");
        let err = dialer_from("[dialer]\nkind = \"sip\"\ntrunk = \"10.0.0.5:5060\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("agent_uri"), "{err}");
        let err = dialer_from("[dialer]\nkind = \"fax\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("fax"), "{err}");
        let err = dialer_from("[dialer]\nkind = \"webhook\"\nurl = \"u\"\nsecret = \"s\"\ntrunk = \"10.0.0.5:5060\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("trunk"), "{err}");
    }

    #[test]
    fn unknown_file_key_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "quic_port = 1\n").expect("write");
        let storage = StorageArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = storage.resolve().unwrap_err().to_string();
        assert!(err.contains("quic_port"), "{err}");
    }
}
