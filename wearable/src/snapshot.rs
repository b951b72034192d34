//! One picture: after `frames` frames the wearer's view (the window, or its off-screen image)
//! is saved as a PNG beside a JSON record of the view's `CameraModel` and the knob's world
//! position, then the app exits.
//!
//! Frame 1 is drawn at time zero, so frame N shows the head at (N − 1) / 30 s. The head stops
//! at frame N (virtual time is paused), and the capture waits until the renderer has compiled
//! every pipeline, so the saved picture is frame N's pose fully drawn, however slow the GPU
//! (or the software rasteriser) is to warm up.

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use farsight_protocol::CameraModel;
use serde::Serialize;

use crate::camera_model::{camera_model, perspective, to_nalgebra};
use crate::headless::{ReadinessPlugin, RendererReady};
use crate::view::{ViewImage, WearerView};
use crate::workbench::Knob;

/// The headless simulator saving the wearer's view, `size` pixels, at frame `frames` as
/// `screenshot`, as fast as it renders; render tests add what the view should show.
pub fn snapshot_app(size: UVec2, frames: u32, screenshot: PathBuf) -> App {
    let mut app = crate::headless::simulator_app();
    app.add_plugins((
        bevy::app::ScheduleRunnerPlugin::run_loop(std::time::Duration::ZERO),
        crate::view::ViewPlugin {
            target: crate::view::ViewTarget::Image(size),
        },
        SnapshotPlugin { frames, screenshot },
    ));
    app
}

/// Frames past the requested one after which a renderer that is still not ready is an error.
const READY_TIMEOUT_FRAMES: u32 = 900;

#[derive(Debug, Clone)]
pub struct SnapshotPlugin {
    pub frames: u32,
    pub screenshot: PathBuf,
}

impl Plugin for SnapshotPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<ReadinessPlugin>() {
            app.add_plugins(ReadinessPlugin);
        }
        app.insert_resource(Snapshot {
            frames: self.frames,
            screenshot: self.screenshot.clone(),
            frame: 0,
            requested: false,
        })
        .add_systems(Last, capture_frame);
    }
}

#[derive(Resource, Debug)]
struct Snapshot {
    frames: u32,
    screenshot: PathBuf,
    frame: u32,
    requested: bool,
}

/// What the JSON beside the PNG holds.
#[derive(Serialize, Debug)]
struct FrameRecord {
    frame: u32,
    time_s: f64,
    camera: CameraRecord,
    /// Where the simulator's knob is, when the picture is of the simulator.
    knob: Option<[f64; 3]>,
}

#[derive(Serialize, Debug)]
struct CameraRecord {
    pose: PoseRecord,
    fx: f64,
    fy: f64,
    cx: f64,
    cy: f64,
    width: u32,
    height: u32,
}

#[derive(Serialize, Debug)]
struct PoseRecord {
    /// World-from-camera translation.
    t: [f64; 3],
    /// World-from-camera rotation as x, y, z, w.
    q: [f64; 4],
}

impl From<&CameraModel> for CameraRecord {
    fn from(model: &CameraModel) -> Self {
        let t = model.pose.translation;
        let q = model.pose.rotation.quaternion().coords;
        let k = model.intrinsics;
        Self {
            pose: PoseRecord {
                t: [t.x, t.y, t.z],
                q: [q.x, q.y, q.z, q.w],
            },
            fx: k.fx,
            fy: k.fy,
            cx: k.cx,
            cy: k.cy,
            width: k.width,
            height: k.height,
        }
    }
}

/// The JSON record's path: the screenshot's with `.json` for its extension.
pub fn record_path(screenshot: &Path) -> PathBuf {
    screenshot.with_extension("json")
}

fn capture_frame(
    mut commands: Commands,
    mut snapshot: ResMut<Snapshot>,
    mut time: ResMut<Time<Virtual>>,
    ready: Res<RendererReady>,
    view: Option<Res<ViewImage>>,
    mut exit: MessageWriter<AppExit>,
) {
    snapshot.frame += 1;
    if snapshot.frame == snapshot.frames {
        // Hold the head still: every later frame renders frame N's pose.
        time.pause();
    }
    if snapshot.requested || snapshot.frame < snapshot.frames {
        return;
    }
    if ready.is_ready() {
        snapshot.requested = true;
        info!(
            frame = snapshot.frames,
            waited = snapshot.frame - snapshot.frames,
            "capturing"
        );
        let screenshot = match view {
            Some(view) => Screenshot::image(view.image.clone()),
            None => Screenshot::primary_window(),
        };
        commands.spawn(screenshot).observe(save_capture);
    } else if snapshot.frame - snapshot.frames > READY_TIMEOUT_FRAMES {
        error!(
            frames = snapshot.frame,
            "the renderer still has pipelines to compile; giving up"
        );
        exit.write(AppExit::error());
    }
}

fn save_capture(
    captured: On<ScreenshotCaptured>,
    snapshot: Res<Snapshot>,
    time: Res<Time<Virtual>>,
    view: Single<(&GlobalTransform, &Projection, &Camera), With<WearerView>>,
    knob: Option<Single<&GlobalTransform, With<Knob>>>,
    mut exit: MessageWriter<AppExit>,
) {
    let (transform, projection, camera) = *view;
    let size = camera.physical_viewport_size().unwrap_or_default();
    let result = perspective(projection)
        .ok_or(SaveError::NotPerspective)
        .and_then(|projection| {
            let model = camera_model(transform, projection, size);
            let knob = knob.map(|knob| to_nalgebra(knob.translation()));
            let record = FrameRecord {
                frame: snapshot.frames,
                time_s: time.elapsed_secs_f64(),
                camera: CameraRecord::from(&model),
                knob: knob.map(|knob| [knob.x, knob.y, knob.z]),
            };
            save(&captured.image, &snapshot.screenshot, &record)
        });
    match result {
        Ok(()) => {
            info!(png = %snapshot.screenshot.display(), "saved frame");
            exit.write(AppExit::Success);
        }
        Err(reason) => {
            error!(png = %snapshot.screenshot.display(), %reason, "could not save the frame");
            exit.write(AppExit::error());
        }
    }
}

/// Why a rendered frame could not be saved.
#[derive(Debug, thiserror::Error)]
enum SaveError {
    #[error("the view's projection is not perspective")]
    NotPerspective,
    #[error("converting the rendered image: {0}")]
    Convert(#[from] bevy::image::IntoDynamicImageError),
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

fn save(image: &Image, png: &Path, record: &FrameRecord) -> Result<(), SaveError> {
    let failed = |path: &Path, e: &dyn std::fmt::Display| SaveError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let rgb = image.clone().try_into_dynamic()?.to_rgb8();
    rgb.save_with_format(png, image::ImageFormat::Png)
        .map_err(|e| failed(png, &e))?;
    let json_path = record_path(png);
    let json = serde_json::to_vec_pretty(record).map_err(|e| failed(&json_path, &e))?;
    std::fs::write(&json_path, json).map_err(|e| failed(&json_path, &e))
}
