//! `farsight-wearable`: parses the command line and assembles the app from the library's
//! plugins — the simulator in a window or headless, a live stream to the relay with the
//! agents' marks anchored in the scene, the HUD, and one saved picture of the wearer's view.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use clap::Parser;
use farsight_client::{ConnectOptions, Trust, parse_fingerprint, resolve_token};
use farsight_protocol::{Role, SessionId};
use farsight_wearable::anchor::AnchorPlugin;
use farsight_wearable::camera_source::{CameraCapture, CameraSource, CameraSourcePlugin};
use farsight_wearable::capture::CapturePlugin;
use farsight_wearable::head_control::HeadControlPlugin;
use farsight_wearable::head_path::HeadPath;
use farsight_wearable::headless::{FRAME_STEP, HeadlessPlugin, OffScreenPlugin, headless_app};
use farsight_wearable::hud::HudPlugin;
use farsight_wearable::link::LinkPlugin;
use farsight_wearable::marks::MarksPlugin;
use farsight_wearable::passthrough::PassthroughPlugin;
use farsight_wearable::simulator::SimulatorPlugin;
use farsight_wearable::snapshot::SnapshotPlugin;
use farsight_wearable::video_background::VideoBackgroundPlugin;
use farsight_wearable::view::{ViewPlugin, ViewTarget};
use farsight_wearable::window::window_app;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Farsight client for AR glasses, with a desktop simulator"
)]
struct Args {
    /// Simulate the glasses: a workbench with a device to fix, seen from a scripted head path
    /// (or steered by hand in the window: W/A/S/D walk, Q/E down/up, arrows or right-drag
    /// look, P back to the path).
    #[arg(long)]
    sim: bool,
    /// No window: render off-screen, publish to --server or save frame --frames as
    /// --screenshot.
    #[arg(long)]
    headless: bool,
    /// With --screenshot, the frame to save; with --server and no --screenshot, the frames to
    /// publish before exiting (without it, publish until killed). Headless, time advances
    /// 1/30 s per frame; in a window it runs in real time.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    frames: Option<u32>,
    /// Save the wearer's view (marks and HUD included) at frame --frames as PNG, then exit;
    /// its camera model goes beside it as .json.
    #[arg(long, requires = "frames")]
    screenshot: Option<PathBuf>,
    /// Width of the rendered picture in pixels.
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(16..=8192))]
    width: u32,
    /// Height of the rendered picture in pixels.
    #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u32).range(16..=8192))]
    height: u32,
    /// Relay to publish to, HOST:PORT (its QUIC address).
    #[arg(long)]
    server: Option<String>,
    /// Wearable token for the relay. Prefer --token-file or the environment: every user of
    /// the machine can read a command line.
    #[arg(long, env = "FARSIGHT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File whose first line is the wearable's token.
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the relay's certificate to pin, as `farsight serve` prints it
    /// for its development certificate. Without it (or --ca) the relay's certificate must
    /// chain to one of the system's trusted CAs.
    #[arg(long, conflicts_with = "ca")]
    fingerprint: Option<String>,
    /// PEM file of the CA certificates the relay's certificate must chain to, instead of the
    /// system's.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The head's path, a JSON file of timed waypoints: {"waypoints": [{"at_s": 0, "eye":
    /// [x, y, z], "look_at": [x, y, z]}, …]} in metres (y up, the bench's top at 0.75).
    /// Without it the head sways in front of the bench.
    #[arg(long)]
    path: Option<PathBuf>,
    /// Show and stream a real camera instead of the simulator: a V4L2 device such as
    /// /dev/video0, or `test` for GStreamer's test pattern. It has no tracking: its pose is
    /// fixed and marks lie on a plane at the median depth.
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
    let size = UVec2::new(args.width, args.height);
    // The camera starts first, so a missing one is reported before any window opens.
    let camera = open_camera(&args, size)?;
    let link = args
        .server
        .as_deref()
        .map(|server| connect_options(server, &args))
        .transpose()?;
    if args.headless && link.is_none() && args.screenshot.is_none() {
        bail!(
            "nothing to do headless: pass --server ADDR --token T, or --frames N --screenshot PATH"
        );
    }
    let mut app = new_app(&args, size)?;
    let simulating = camera.is_none();
    add_source(&mut app, camera, &args, size)?;
    add_view(&mut app, &args, link.is_some(), size);
    let relay = link.as_ref().map(|options| options.server.to_string());
    if let Some(options) = link {
        app.add_plugins((LinkPlugin { options }, AnchorPlugin, MarksPlugin));
        if simulating {
            // Without a screenshot to end the run, publishing ends it.
            let frames = args.frames.filter(|_| args.screenshot.is_none());
            app.add_plugins((OffScreenPlugin { size }, CapturePlugin { frames }));
        }
    }
    app.add_plugins(HudPlugin { relay });
    if let (Some(frames), Some(screenshot)) = (args.frames, args.screenshot) {
        app.add_plugins(SnapshotPlugin { frames, screenshot });
    }
    Ok(match app.run() {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    })
}

/// The real camera `--camera` names, started; `None` for the simulator.
fn open_camera(args: &Args, size: UVec2) -> anyhow::Result<Option<CameraCapture>> {
    Ok(match (&args.camera, args.sim) {
        (Some(_), true) => bail!("--sim and --camera are two sources: pass one"),
        (Some(camera), false) => {
            let source: CameraSource = camera.parse().context("--camera")?;
            Some(CameraCapture::start(source, size).context("--camera")?)
        }
        (None, true) => None,
        (None, false) => bail!("nothing to show: pass --sim or --camera DEVICE|test"),
    })
}

/// A headless app, or one with the wearer's window when there is a display to open it on.
fn new_app(args: &Args, size: UVec2) -> anyhow::Result<App> {
    if args.headless {
        return Ok(headless_app());
    }
    // winit panics without a display; say what to do instead.
    if ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .all(|var| std::env::var_os(var).is_none_or(|v| v.is_empty()))
    {
        bail!(
            "no display for the wearer's view (DISPLAY and WAYLAND_DISPLAY are unset): \
             run it on a desktop or under xvfb-run, or pass --headless"
        );
    }
    Ok(window_app(size))
}

/// What the wearer sees the world through: the simulated bench, or `camera` behind the marks.
fn add_source(
    app: &mut App,
    camera: Option<CameraCapture>,
    args: &Args,
    size: UVec2,
) -> anyhow::Result<()> {
    let simulating = camera.is_none();
    match camera {
        None => {
            app.add_plugins(SimulatorPlugin);
            if args.headless {
                // Time advances 1/30 s a frame, however long the software renderer takes.
                app.add_plugins(HeadlessPlugin);
            } else {
                app.add_plugins(HeadControlPlugin);
            }
        }
        Some(capture) => {
            app.add_plugins((
                VideoBackgroundPlugin { size },
                CameraSourcePlugin::new(capture),
                PassthroughPlugin { size },
            ));
        }
    }
    if let Some(path) = &args.path {
        ensure!(
            simulating,
            "--path moves the simulated head; a camera has its own"
        );
        app.insert_resource(HeadPath::read(path).context("--path")?);
    }
    Ok(())
}

/// Where the wearer's view goes: the window, or an image for `--screenshot`; headless, the
/// loop runs at the glasses' rate while streaming.
fn add_view(app: &mut App, args: &Args, streaming: bool, size: UVec2) {
    if !args.headless {
        app.add_plugins(ViewPlugin {
            target: ViewTarget::Window,
        });
        return;
    }
    // A stream goes at the glasses' rate; a screenshot alone as fast as it renders.
    let step = if streaming {
        FRAME_STEP
    } else {
        Duration::ZERO
    };
    app.add_plugins(ScheduleRunnerPlugin::run_loop(step));
    if args.screenshot.is_some() {
        app.add_plugins(ViewPlugin {
            target: ViewTarget::Image(size),
        });
    }
}

fn connect_options(server: &str, args: &Args) -> anyhow::Result<ConnectOptions> {
    let trust = match (&args.fingerprint, &args.ca) {
        (Some(fingerprint), _) => {
            Trust::Fingerprint(parse_fingerprint(fingerprint).context("--fingerprint")?)
        }
        (None, Some(ca)) => Trust::from_pem_file(ca).context("--ca")?,
        (None, None) => Trust::system().context("the system's CA certificates")?,
    };
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
        trust,
        role: Role::Wearable,
        token: resolve_token(args.token.as_deref(), args.token_file.as_deref())?,
        resume: SessionId(0),
        receive_window: None,
    })
}
