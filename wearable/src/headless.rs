//! Headless runs: the head camera renders into an off-screen image, time advances by a fixed
//! step per frame, and after `frames` frames the picture is saved as a PNG beside a JSON record
//! of the frame's `CameraModel` and the knob's world position, then the app exits.
//!
//! The head stops at frame N (virtual time is paused), and the capture waits until the renderer
//! has compiled every pipeline, so the saved picture is frame N's pose fully drawn, however slow
//! the GPU (or the software rasteriser) is to warm up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_resource::{PipelineCache, TextureFormat};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::time::TimeUpdateStrategy;
use farsight_protocol::CameraModel;
use serde::Serialize;

use crate::camera_model::{camera_model, perspective, to_nalgebra};
use crate::simulator::{Head, Knob};

/// The simulated glasses' frame period. Frame 1 is drawn at time zero and each later frame
/// exactly this much after the one before, so frame N shows the head at (N − 1) / 30 s.
pub const FRAME_STEP: Duration = Duration::from_nanos(1_000_000_000 / 30);

/// Render frames with every pipeline ready before a capture is trusted.
const READY_FRAMES: u32 = 3;

/// Frames past the requested one after which a renderer that is still not ready is an error.
const READY_TIMEOUT_FRAMES: u32 = 900;

#[derive(Debug, Clone)]
pub struct HeadlessPlugin {
    pub frames: u32,
    pub screenshot: PathBuf,
    pub size: UVec2,
}

impl Plugin for HeadlessPlugin {
    fn build(&self, app: &mut App) {
        let ready = RendererReady::default();
        app.insert_resource(TimeUpdateStrategy::ManualDuration(FRAME_STEP))
            .insert_resource(Capture {
                frames: self.frames,
                screenshot: self.screenshot.clone(),
                size: self.size,
                frame: 0,
                requested: false,
            })
            .insert_resource(ready.clone())
            .add_systems(PostStartup, render_head_off_screen)
            .add_systems(Last, capture_frame);
        app.sub_app_mut(RenderApp)
            .insert_resource(ready)
            .add_systems(Render, note_pipelines_ready.in_set(RenderSystems::Cleanup));
    }
}

#[derive(Resource, Debug)]
struct Capture {
    frames: u32,
    screenshot: PathBuf,
    size: UVec2,
    frame: u32,
    requested: bool,
}

/// The image the head camera renders into.
#[derive(Resource, Debug)]
struct OffScreen(Handle<Image>);

/// Consecutive render frames with no pipeline waiting to compile, counted in the render world
/// and read in the main world.
#[derive(Resource, Clone, Debug, Default)]
struct RendererReady(Arc<AtomicU32>);

/// What the JSON beside the PNG holds.
#[derive(Serialize, Debug)]
struct FrameRecord {
    frame: u32,
    time_s: f64,
    camera: CameraRecord,
    knob: [f64; 3],
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

fn render_head_off_screen(
    mut commands: Commands,
    capture: Res<Capture>,
    mut images: ResMut<Assets<Image>>,
    head: Single<Entity, With<Head>>,
) {
    let image = images.add(Image::new_target_texture(
        capture.size.x,
        capture.size.y,
        TextureFormat::Rgba8UnormSrgb,
        None,
    ));
    commands
        .entity(*head)
        .insert(RenderTarget::Image(image.clone().into()));
    commands.insert_resource(OffScreen(image));
}

fn note_pipelines_ready(cache: Res<PipelineCache>, ready: Res<RendererReady>) {
    if cache.waiting_pipelines().next().is_none() {
        ready.0.fetch_add(1, Ordering::Relaxed);
    } else {
        ready.0.store(0, Ordering::Relaxed);
    }
}

fn capture_frame(
    mut commands: Commands,
    mut capture: ResMut<Capture>,
    mut time: ResMut<Time<Virtual>>,
    ready: Res<RendererReady>,
    off_screen: Res<OffScreen>,
    mut exit: MessageWriter<AppExit>,
) {
    capture.frame += 1;
    if capture.frame == capture.frames {
        // Hold the head still: every later frame renders frame N's pose.
        time.pause();
    }
    if capture.requested || capture.frame < capture.frames {
        return;
    }
    let ready_frames = ready.0.load(Ordering::Relaxed);
    if ready_frames >= READY_FRAMES {
        capture.requested = true;
        info!(
            frame = capture.frames,
            waited = capture.frame - capture.frames,
            "capturing"
        );
        commands
            .spawn(Screenshot::image(off_screen.0.clone()))
            .observe(save_capture);
    } else if capture.frame - capture.frames > READY_TIMEOUT_FRAMES {
        error!(
            frames = capture.frame,
            "the renderer still has pipelines to compile; giving up"
        );
        exit.write(AppExit::error());
    }
}

fn save_capture(
    captured: On<ScreenshotCaptured>,
    capture: Res<Capture>,
    time: Res<Time<Virtual>>,
    head: Single<(&GlobalTransform, &Projection), With<Head>>,
    knob: Single<&GlobalTransform, With<Knob>>,
    mut exit: MessageWriter<AppExit>,
) {
    let (transform, projection) = *head;
    let result = perspective(projection)
        .ok_or_else(|| "the head camera's projection is not perspective".to_owned())
        .and_then(|projection| {
            let model = camera_model(transform, projection, capture.size);
            let knob = to_nalgebra(knob.translation());
            let record = FrameRecord {
                frame: capture.frames,
                time_s: time.elapsed_secs_f64(),
                camera: CameraRecord::from(&model),
                knob: [knob.x, knob.y, knob.z],
            };
            save(&captured.image, &capture.screenshot, &record)
        });
    match result {
        Ok(()) => {
            info!(png = %capture.screenshot.display(), "saved frame");
            exit.write(AppExit::Success);
        }
        Err(reason) => {
            error!(png = %capture.screenshot.display(), %reason, "could not save the frame");
            exit.write(AppExit::error());
        }
    }
}

fn save(image: &Image, png: &Path, record: &FrameRecord) -> Result<(), String> {
    let rgb = image
        .clone()
        .try_into_dynamic()
        .map_err(|e| format!("converting the rendered image: {e}"))?
        .to_rgb8();
    rgb.save_with_format(png, image::ImageFormat::Png)
        .map_err(|e| format!("writing {}: {e}", png.display()))?;
    let json = serde_json::to_vec_pretty(record).map_err(|e| format!("encoding JSON: {e}"))?;
    let json_path = record_path(png);
    std::fs::write(&json_path, json).map_err(|e| format!("writing {}: {e}", json_path.display()))
}
