//! The `farsight` command line: parses arguments and hands over to the library.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use farsight_client::{ConnectOptions, Trust, connect, parse_fingerprint};
use farsight_outreach::simulate::{SimulateOptions, simulate};
use farsight_outreach::train::TrainConfig;
use farsight_protocol::{ControlMessage, Role, SessionId};
use farsight_server::config::{DialerConfig, ServeArgs, ServeConfig, StorageArgs};
use farsight_server::outreach::import;
use farsight_server::outreach::report as outreach_report;
use farsight_server::outreach::scheduler::{self, Dialer};
use farsight_server::outreach::service;
use farsight_server::probe::{self, EncoderSettings, PublishOptions, WatchOptions};
use farsight_store::{Store, TokenRole};

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
    /// Usage events: import from a file.
    #[command(subcommand)]
    Events(ImportCommand),
    /// User profiles: import from a file.
    #[command(subcommand)]
    Users(ImportCommand),
    /// Write a synthetic usage history (users.ndjson and events.ndjson) for demos and tests.
    Simulate {
        #[arg(long, default_value_t = 1000)]
        users: usize,
        #[arg(long, default_value_t = 60)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First simulated day, YYYY-MM-DD (default: `days` days before today).
        #[arg(long)]
        start: Option<jiff::civil::Date>,
        /// Directory to write into.
        #[arg(long, default_value = "simulated")]
        out: PathBuf,
    },
    /// The prediction model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Proactive calls: the policy, a scheduling pass, the report.
    #[command(subcommand)]
    Outreach(OutreachCommand),
    /// The highest predicted needs, with their reasons.
    Predictions {
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Output JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import an NDJSON file (or a JSON array); bad rows are reported by line and skipped.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum OutreachCommand {
    /// Print the effective calling policy (defaults merged with the configuration file).
    Policy,
    /// Plan calls from the current predictions and dial those due, once (for cron).
    RunOnce {
        /// This scheduler's name in the call records.
        #[arg(long)]
        node: Option<String>,
    },
    /// Calls planned, placed and answered, and inbound contacts of called users against
    /// the hold-out, with the relative reduction and its 95% confidence interval.
    Report {
        /// Also draw the comparison as a PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Fit on stored history with a time-based split, report metrics, store it as active.
    Train {
        /// L2 penalty on the standardised coefficients.
        #[arg(long, default_value_t = 1.0)]
        l2: f64,
        /// Also write the training table as CSV (features and label) for comparisons.
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// List stored models with their metrics.
    List,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// wearable, agent, supervisor, or service (posts usage events over HTTP).
        #[arg(long)]
        role: TokenRole,
        #[arg(long)]
        name: String,
        /// For a wearable: the platform user (as in `users import`) it belongs to, whose
        /// plan tier and likely need route their assist requests in the agents' queue.
        #[arg(long)]
        user: Option<String>,
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
        Command::Events(ImportCommand::Import { file }) => {
            import(&cli.storage, &file, import::What::Events).await
        }
        Command::Users(ImportCommand::Import { file }) => {
            import(&cli.storage, &file, import::What::Users).await
        }
        Command::Simulate {
            users,
            days,
            seed,
            start,
            out,
        } => simulate_files(users, days, seed, start, &out),
        Command::Model(ModelCommand::Train { l2, export }) => {
            let store = open_store(&cli.storage).await?;
            let mut config = TrainConfig::default();
            config.options.l2 = l2;
            let trained = service::train_from_store(&store, &config, export.as_deref()).await?;
            println!("{}", service::render_report(&trained));
            Ok(())
        }
        Command::Model(ModelCommand::List) => {
            let store = open_store(&cli.storage).await?;
            for m in store.models().await? {
                let active = if m.active { "active" } else { "" };
                println!("{:<18} {:<7} {}", m.id, active, m.metrics["test"]);
            }
            Ok(())
        }
        Command::Outreach(cmd) => outreach_command(&cli.storage, cmd).await,
        Command::Predictions { top, json } => {
            let store = open_store(&cli.storage).await?;
            let predictions = service::current_predictions(&store, top, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&predictions)?);
            } else {
                for p in predictions {
                    let reasons: Vec<_> = p.reasons.iter().map(|r| r.text.as_str()).collect();
                    println!(
                        "{:>5.1}%  {:<10} {:<16} {}",
                        p.probability * 100.0,
                        p.user,
                        p.topic,
                        reasons.join("; ")
                    );
                }
            }
            Ok(())
        }
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
    // Written, not printed: a closed stdout must not take the server down.
    let _ = writeln!(
        std::io::stdout(),
        "QUIC   {} (ALPN farsight/1)\nHTTP   http://{}\ncertificate SHA-256 {}\nconsole http://{}/ (WebTransport on UDP {})",
        running.quic_addr,
        running.http_addr,
        running.fingerprint,
        running.http_addr,
        running.webtransport_addr
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn token(storage: &StorageArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    match cmd {
        TokenCommand::Create { role, name, user } => {
            let (record, secret) = store.create_token(role, &name).await?;
            if let Some(user) = &user {
                store.set_token_subject(record.id, user).await?;
            }
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
            // What agents do to the picture is shown as it arrives (the probe anchors marks).
            let (marks, mut arriving) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                while let Some(msg) = arriving.recv().await {
                    match msg {
                        ControlMessage::Annotate(m) => println!(
                            "mark {} ({:?}, {} points) on frame {} from participant {}",
                            m.id.0,
                            m.kind,
                            m.points.len(),
                            m.frame.0,
                            m.author.0
                        ),
                        other => println!("{other:?}"),
                    }
                }
            });
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
                    marks: Some(marks),
                    reconnect: Some(opts.clone()),
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

async fn import(storage: &StorageArgs, file: &Path, what: import::What) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    let report = import::import_file(&store, file, what).await?;
    for r in report.rejected.iter().take(20) {
        eprintln!("line {}: {}", r.row, r.reason);
    }
    if report.rejected.len() > 20 {
        eprintln!("… and {} more rejected lines", report.rejected.len() - 20);
    }
    println!(
        "{} accepted, {} duplicates, {} rejected",
        report.accepted,
        report.duplicates,
        report.rejected.len()
    );
    Ok(())
}

fn simulate_files(
    users: usize,
    days: u32,
    seed: u64,
    start: Option<jiff::civil::Date>,
    out: &Path,
) -> anyhow::Result<()> {
    let start = match start {
        Some(date) => date,
        None => jiff::Zoned::now()
            .date()
            .checked_sub(jiff::Span::new().days(i64::from(days)))?,
    };
    let start_ms = start
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_millisecond();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = out.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(std::io::BufWriter::new(file))
    };
    let (mut users_out, mut events_out) = (open("users.ndjson")?, open("events.ndjson")?);
    let bar = indicatif::ProgressBar::new_spinner();
    let (mut n_users, mut n_events) = (0u64, 0u64);
    let (mut users_failed, mut events_failed) = (None, None);
    let options = SimulateOptions {
        users,
        days,
        seed,
        start_ms,
    };
    simulate(
        &options,
        |u| {
            n_users += 1;
            if let Err(e) = write_line(&mut users_out, u) {
                users_failed.get_or_insert(e);
            }
        },
        |e| {
            n_events += 1;
            if n_events % 100_000 == 0 {
                bar.set_message(format!("{n_events} events"));
                bar.tick();
            }
            if let Err(e) = write_line(&mut events_out, e) {
                events_failed.get_or_insert(e);
            }
        },
    );
    if let Some(e) = users_failed.or(events_failed) {
        return Err(anyhow::Error::from(e).context("writing the simulation"));
    }
    users_out.flush()?;
    events_out.flush()?;
    bar.finish_and_clear();
    println!(
        "{n_users} users and {n_events} events from {start} over {days} days written to {}",
        out.display()
    );
    Ok(())
}

fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

async fn outreach_command(storage: &StorageArgs, cmd: OutreachCommand) -> anyhow::Result<()> {
    let (policy_config, dialer) = storage.outreach()?;
    let policy = policy_config
        .validate()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    match cmd {
        OutreachCommand::Policy => {
            // Printed as the configuration file's own tables, so it can be pasted back.
            #[derive(serde::Serialize)]
            struct Shown<'a> {
                outreach: &'a farsight_outreach::policy::PolicyConfig,
                dialer: Option<DialerConfig>,
            }
            let dialer = dialer.map(|mut d| {
                if let DialerConfig::Webhook { secret, .. } = &mut d {
                    *secret = "***".into();
                }
                d
            });
            print!(
                "{}",
                toml::to_string(&Shown {
                    outreach: &policy_config,
                    dialer
                })?
            );
        }
        OutreachCommand::RunOnce { node } => {
            let Some(dialer_config) = dialer else {
                bail!("no [dialer] in the configuration: nothing would be dialled");
            };
            let dialer = Dialer::from_config(&dialer_config);
            let node = node
                .or_else(|| dialer_config.node().map(str::to_string))
                .unwrap_or_else(scheduler::default_node);
            let store = open_store(storage).await?;
            let now = farsight_outreach::ids::Millis::now();
            let (planned, dialled) =
                scheduler::run_once(&store, &policy, &dialer, &node, now).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"planned": planned, "dialled": dialled})
                )?
            );
        }
        OutreachCommand::Report { png, json } => {
            let store = open_store(storage).await?;
            let now = jiff::Timestamp::now().as_millisecond();
            let report = outreach_report::build(&store, now).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", farsight_outreach::report::render(&report));
            }
            if let Some(path) = png {
                outreach_report::chart(&report, &path).map_err(|e| anyhow::anyhow!(e))?;
                eprintln!("chart written to {}", path.display());
            }
        }
    }
    Ok(())
}
