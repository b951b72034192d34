//! `farsight probe`: the reference client from the command line — publish test video as a
//! wearable (printing the marks agents draw on it), or watch a session and report its frames.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use farsight_client::{ConnectOptions, Trust, connect, parse_fingerprint, resolve_token};
use farsight_protocol::{ControlMessage, Role, SessionId};
use farsight_server::config::StorageArgs;
use farsight_server::probe::{self, EncoderSettings, PublishOptions, WatchOptions};

#[derive(Debug, clap::Args)]
pub struct ProbeTarget {
    /// The server's QUIC address.
    #[arg(long, default_value = "127.0.0.1:4433")]
    server: SocketAddr,
    /// Access token (`farsight token create`). Prefer --token-file or the environment:
    /// every user of the machine can read a command line.
    #[arg(long, env = "FARSIGHT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File whose first line is the access token.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// SHA-256 fingerprint of the server certificate, as `farsight serve` prints it;
    /// default: the development certificate in the data directory.
    #[arg(long)]
    fingerprint: Option<String>,
    /// TLS name to expect.
    #[arg(long, default_value = "localhost")]
    server_name: String,
}

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
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
        token: resolve_token(target.token.as_deref(), target.token_file.as_deref())?,
        resume: SessionId(resume),
        receive_window: None,
    })
}

pub async fn run(storage: &StorageArgs, cmd: ProbeCommand) -> anyhow::Result<()> {
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
            let encoder = EncoderSettings {
                width,
                height,
                fps,
                bitrate_kbps: bitrate,
                keyframe_interval: fps,
                ..EncoderSettings::default()
            };
            let opts = connect_options(storage, &target, Role::Wearable, resume.unwrap_or(0))?;
            publish(opts, encoder, seconds).await
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
            let opts = connect_options(storage, &target, role, 0)?;
            let watch = WatchOptions {
                session: SessionId(session),
                frames,
                duration: seconds.map(Duration::from_secs_f64),
                json,
                quiet,
            };
            watch_session(&opts, &watch).await
        }
    }
}

/// Publishes until `seconds` pass (or for ever), then prints the publisher's report as JSON.
async fn publish(
    opts: ConnectOptions,
    encoder: EncoderSettings,
    seconds: Option<f64>,
) -> anyhow::Result<()> {
    let mut conn = connect(&opts).await?;
    println!("publishing session {}", conn.session);
    // What agents do to the picture is shown as it arrives (the probe anchors marks).
    let (marks, arriving) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(print_marks(arriving));
    let report = probe::publish(
        &mut conn,
        &PublishOptions {
            encoder,
            duration: seconds.map(Duration::from_secs_f64),
            marks: Some(marks),
            reconnect: Some(opts.clone()),
        },
    )
    .await?;
    println!("{}", serde_json::to_string(&report)?);
    conn.close();
    Ok(())
}

/// Prints each mark an agent draws on the published picture, one line each.
async fn print_marks(mut arriving: tokio::sync::mpsc::UnboundedReceiver<ControlMessage>) {
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
}

/// Watches a session and prints its report: JSON, or one summary line.
async fn watch_session(opts: &ConnectOptions, watch: &WatchOptions) -> anyhow::Result<()> {
    let mut conn = connect(opts).await?;
    let report = probe::watch(&mut conn, watch).await?;
    if watch.json {
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
    Ok(())
}
