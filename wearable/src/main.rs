//! `farsight-wearable`: the client for AR glasses. Today it runs the desktop simulator
//! headless — a workbench seen from a scripted head path, rendered off-screen — and saves a
//! frame with its camera model; linking to a relay and real cameras come next.

mod camera_model;
mod headless;
mod simulator;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use clap::Parser;

use crate::headless::HeadlessPlugin;
use crate::simulator::SimulatorPlugin;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Farsight client for AR glasses, with a desktop simulator"
)]
struct Args {
    /// Simulate the glasses: a workbench with a device to fix, seen from a scripted head path.
    #[arg(long)]
    sim: bool,
    /// Render off-screen, save frame N and exit (needs --frames and --screenshot).
    #[arg(long, requires_all = ["frames", "screenshot"])]
    headless: bool,
    /// Frames to render before capturing; time advances 1/30 s per frame.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    frames: Option<u32>,
    /// Where to save the captured frame as PNG; its camera model goes beside it as .json.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Width of the rendered picture in pixels.
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(16..=8192))]
    width: u32,
    /// Height of the rendered picture in pixels.
    #[arg(long, default_value_t = 720, value_parser = clap::value_parser!(u32).range(16..=8192))]
    height: u32,
    /// Relay to publish to, HOST:PORT (not supported yet).
    #[arg(long)]
    server: Option<String>,
    /// Wearable token for the relay (not supported yet).
    #[arg(long)]
    token: Option<String>,
    /// SHA-256 fingerprint of the relay's certificate to pin (not supported yet).
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
    if args.server.is_some() || args.token.is_some() || args.fingerprint.is_some() {
        bail!(
            "not yet: publishing to a relay (--server, --token, --fingerprint) is not built; \
             `farsight probe publish` publishes test video as a wearable"
        );
    }
    if args.camera.is_some() {
        bail!("not yet: capture from a real camera (--camera) is not built; use --sim");
    }
    if !args.sim {
        bail!("nothing to run: pass --sim (the simulator is the only camera so far)");
    }
    let (Some(frames), Some(screenshot), true) = (args.frames, args.screenshot, args.headless)
    else {
        bail!(
            "not yet: the simulator's window is not built; \
             run with --headless --frames N --screenshot PATH"
        );
    };

    let exit = App::new()
        .add_plugins((
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: None,
                    exit_condition: ExitCondition::DontExit,
                    ..default()
                })
                .set(RenderPlugin {
                    // Compile each pipeline in the frame that asks for it, so the first frames
                    // are drawn whole rather than missing the meshes still compiling.
                    synchronous_pipeline_compilation: true,
                    ..default()
                }),
            ScheduleRunnerPlugin::run_loop(Duration::ZERO),
            SimulatorPlugin,
            HeadlessPlugin {
                frames,
                screenshot,
                size: UVec2::new(args.width, args.height),
            },
        ))
        .run();
    Ok(match exit {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    })
}
