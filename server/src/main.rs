//! The `farsight` command line: parses arguments and hands over to the library.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use farsight_client::{ConnectOptions, Trust, connect, parse_fingerprint};
use farsight_protocol::{Role, SessionId};
use farsight_server::config::{ServeArgs, ServeConfig, StorageArgs};
use farsight_server::probe::{self, EncoderSettings, PublishOptions, WatchOptions};
use farsight_server::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "farsight",
    version,
    about = "AR remote-assist relay and outreach server"
)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "FARSIGHT_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay (QUIC) and the HTTP API.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The reference client: publish test video or watch a session.
    #[command(subcommand)]
    Probe(ProbeCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        #[arg(long)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Debug, clap::Args)]
struct ProbeTarget {
    /// The server's QUIC address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    server: SocketAddr,
    /// Access token (`farsight token create`).
    #[arg(long, env = "FARSIGHT_TOKEN")]
    token: String,
    /// SHA-256 fingerprint of the server certificate, as `farsight serve` prints it;
    /// default: the development certificate in the data directory.
    #[arg(long)]
    fingerprint: Option<String>,
    /// TLS name to expect.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

#[derive(Debug, Subcommand)]
enum ProbeCommand {
    /// Publish GStreamer test video (H.264) with a moving synthetic pose, as a wearable.
    Publish {
        #[command(flatten)]
        target: ProbeTarget,
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        #[arg(long, default_value_t = 30)]
        fps: u32,
        /// Target bit rate, kbit/s.
        #[arg(long, default_value_t = 2000)]
        bitrate: u32,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<f64>,
        /// Resume this session instead of starting a new one.
        #[arg(long)]
        resume: Option<u64>,
    },
    /// Join a session as an agent and report each frame and a summary.
    Watch {
        #[command(flatten)]
        target: ProbeTarget,
        #[arg(long)]
        session: u64,
        /// The token's role: agent or supervisor.
        #[arg(long, default_value = "agent")]
        role: Role,
        /// Stop after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        /// One JSON object per frame, then the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Print only the summary.
        #[arg(long)]
        quiet: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.command {
        Command::Serve(args) => serve(ServeConfig::resolve(&cli.storage, &args)?).await,
        Command::Migrate => {
            let store = open_store(&cli.storage).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token(cmd) => token(&cli.storage, cmd).await,
        Command::Probe(cmd) => probe_command(&cli.storage, cmd).await,
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(storage: &StorageArgs) -> anyhow::Result<Store> {
    let (data_dir, url) = storage.resolve()?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    Store::open(&url)
        .await
        .with_context(|| format!("opening {}", farsight_server::redact(&url)))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let running = farsight_server::start(&config).await?;
    tracing::info!(
        quic = %running.quic_addr,
        http = %running.http_addr,
        database = %farsight_server::redact(&config.database_url),
        "farsight serving"
    );
    println!("QUIC   {} (ALPN farsight/1)", running.quic_addr);
    println!("HTTP   http://{}", running.http_addr);
    println!("certificate SHA-256 {}", running.fingerprint);
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn token(storage: &StorageArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    match cmd {
        TokenCommand::Create { role, name } => {
            let (record, secret) = store.create_token(role, &name).await?;
            eprintln!(
                "created {} token {} ({}); it is shown only now:",
                role.as_str(),
                record.id,
                record.name
            );
            println!("{secret}");
        }
        TokenCommand::List => {
            println!("{:<18} {:<11} {:<8} name", "id", "role", "state");
            for t in store.list_tokens().await? {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<18} {:<11} {:<8} {}",
                    t.id,
                    t.role.as_str(),
                    state,
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !store.revoke_token(id).await? {
                bail!("no active token with id {id}");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn connect_options(
    storage: &StorageArgs,
    target: &ProbeTarget,
    role: Role,
    resume: u64,
) -> anyhow::Result<ConnectOptions> {
    let pin = match &target.fingerprint {
        Some(hex) => parse_fingerprint(hex)?,
        None => {
            let (data_dir, _) = storage.resolve()?;
            let cert = data_dir.join("dev-cert.pem");
            let identity = farsight_server::cert::load(&cert, &data_dir.join("dev-key.pem"))
                .with_context(|| {
                    format!(
                        "no --fingerprint given and no development certificate at {}",
                        cert.display()
                    )
                })?;
            parse_fingerprint(&identity.fingerprint)?
        }
    };
    Ok(ConnectOptions {
        server: target.server,
        server_name: target.server_name.clone(),
        trust: Trust::Fingerprint(pin),
        role,
        token: target.token.clone(),
        resume: SessionId(resume),
        receive_window: None,
    })
}

async fn probe_command(storage: &StorageArgs, cmd: ProbeCommand) -> anyhow::Result<()> {
    match cmd {
        ProbeCommand::Publish {
            target,
            width,
            height,
            fps,
            bitrate,
            seconds,
            resume,
        } => {
            let opts = connect_options(storage, &target, Role::Wearable, resume.unwrap_or(0))?;
            let mut conn = connect(&opts).await?;
            println!("publishing session {}", conn.session);
            let report = probe::publish(
                &mut conn,
                &PublishOptions {
                    encoder: EncoderSettings {
                        width,
                        height,
                        fps,
                        bitrate_kbps: bitrate,
                        keyframe_interval: fps,
                    },
                    duration: seconds.map(Duration::from_secs_f64),
                },
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            conn.close();
        }
        ProbeCommand::Watch {
            target,
            session,
            role,
            frames,
            seconds,
            json,
            quiet,
        } => {
            if !role.watches() {
                bail!("watch with an agent or supervisor token");
            }
            let mut conn = connect(&connect_options(storage, &target, role, 0)?).await?;
            let report = probe::watch(
                &mut conn,
                &WatchOptions {
                    session: SessionId(session),
                    frames,
                    duration: seconds.map(Duration::from_secs_f64),
                    json,
                    quiet,
                },
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} frames ({} key) in {:.1} s, {:.0} kbit/s, groups {} complete {} dropped, delay p50 {:.1} ms p99 {:.1} ms",
                    report.frames,
                    report.keyframes,
                    report.seconds,
                    report.bits_per_second / 1000.0,
                    report.groups_complete,
                    report.groups_dropped,
                    report.delay_ms_p50,
                    report.delay_ms_p99
                );
            }
            conn.close();
        }
    }
    Ok(())
}
