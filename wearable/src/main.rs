//! `farsight-wearable`: parses the command line and assembles the app from the library's
//! plugins — the simulator, headless rendering, and either one saved frame or a live stream
//! to the relay.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use clap::Parser;
use farsight_client::{ConnectOptions, Trust, parse_fingerprint};
use farsight_protocol::{Role, SessionId};
use farsight_wearable::anchor::AnchorPlugin;
use farsight_wearable::capture::CapturePlugin;
use farsight_wearable::headless::{FRAME_STEP, simulator_app};
use farsight_wearable::link::LinkPlugin;
use farsight_wearable::marks::MarksPlugin;
use farsight_wearable::snapshot::SnapshotPlugin;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Farsight client for AR glasses, with a desktop simulator"
)]
struct Args {
    /// Simulate the glasses: a workbench with a device to fix, seen from a scripted head path.
    #[arg(long)]
    sim: bool,
    /// Render off-screen: publish to --server, or save frame --frames as --screenshot.
    #[arg(long)]
    headless: bool,
    /// With --screenshot, the frame to save; with --server, the frames to publish before
    /// exiting (without it, publish until killed). Time advances 1/30 s per frame.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    frames: Option<u32>,
    /// Where to save the captured frame as PNG; its camera model goes beside it as .json.
    #[arg(long, requires = "frames", conflicts_with = "server")]
    screenshot: Option<PathBuf>,
    /// Width of the rendered picture in pixels.
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(16..=8192))]
    width: u32,
    /// Height of the rendered picture in pixels.
    #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u32).range(16..=8192))]
    height: u32,
    /// Relay to publish to, HOST:PORT (its QUIC address).
    #[arg(long, requires = "token")]
    server: Option<String>,
    /// Wearable token for the relay.
    #[arg(long, env = "FARSIGHT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// SHA-256 fingerprint of the relay's certificate to pin, as `farsight serve` prints it.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Capture from a real camera device instead of the simulator (not supported yet).
    #[arg(long)]
    camera: Option<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("farsight-wearable: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.camera.is_some() {
        bail!("not yet: capture from a real camera (--camera) is not built; use --sim");
    }
    if !args.sim {
        bail!("nothing to run: pass --sim (the simulator is the only camera so far)");
    }
    if !args.headless {
        bail!(
            "not yet: the simulator's window is not built; run with --headless and \
             --server ADDR --token T (publish) or --frames N --screenshot PATH (one frame)"
        );
    }
    let link = match &args.server {
        Some(server) => Some(connect_options(server, &args)?),
        None if args.frames.is_some() && args.screenshot.is_some() => None,
        None => {
            bail!("nothing to do: pass --server ADDR --token T, or --frames N --screenshot PATH")
        }
    };
    let size = UVec2::new(args.width, args.height);
    let mut app = simulator_app(size);
    if let Some(options) = link {
        // At most one frame per 1/30 s, so the stream plays at the glasses' rate.
        app.add_plugins((
            ScheduleRunnerPlugin::run_loop(FRAME_STEP),
            LinkPlugin { options },
            CapturePlugin {
                frames: args.frames,
            },
            AnchorPlugin,
            MarksPlugin,
        ));
    } else if let (Some(frames), Some(screenshot)) = (args.frames, args.screenshot) {
        app.add_plugins((
            ScheduleRunnerPlugin::run_loop(Duration::ZERO),
            SnapshotPlugin { frames, screenshot },
        ));
    }
    Ok(match app.run() {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    })
}

fn connect_options(server: &str, args: &Args) -> anyhow::Result<ConnectOptions> {
    let Some(fingerprint) = &args.fingerprint else {
        bail!(
            "not yet: checking the relay's certificate against the system's roots is not \
             built; pass --fingerprint with the SHA-256 that `farsight serve` prints"
        );
    };
    let fingerprint = parse_fingerprint(fingerprint).context("--fingerprint")?;
    let addr: SocketAddr = server
        .to_socket_addrs()
        .with_context(|| format!("--server {server}: expected HOST:PORT"))?
        .next()
        .with_context(|| format!("--server {server}: no address"))?;
    // The development certificate is issued for localhost; a named host is its own name.
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = if host.parse::<IpAddr>().is_ok() {
        "localhost".to_owned()
    } else {
        host.to_owned()
    };
    Ok(ConnectOptions {
        server: addr,
        server_name,
        trust: Trust::Fingerprint(fingerprint),
        role: Role::Wearable,
        token: args
            .token
            .clone()
            .context("--token is required with --server")?,
        resume: SessionId(0),
        receive_window: None,
    })
}
