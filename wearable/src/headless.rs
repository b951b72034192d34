//! Headless runs and off-screen pictures. Without a window time advances by a fixed step per
//! frame, so a run renders the same frames every time however fast the GPU is; the head
//! camera films the stream into an off-screen image whether or not there is a window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_resource::{PipelineCache, TextureFormat};
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::time::TimeUpdateStrategy;
use farsight_media::FULL_FPS;

use crate::simulator::Head;

/// The simulated glasses' frame period: each frame shows the head this much later than the
/// frame before.
pub const FRAME_STEP: Duration = Duration::from_nanos(1_000_000_000 / FULL_FPS as u64);

/// Render frames with every pipeline ready before a picture is trusted.
const READY_FRAMES: u32 = 3;

/// A Bevy app that runs the simulator with no window and a fixed time step. The binary and
/// the render tests add what takes its pictures: [`OffScreenPlugin`] for the stream,
/// `SnapshotPlugin` for the wearer's view.
pub fn simulator_app() -> App {
    let mut app = headless_app();
    app.add_plugins((crate::simulator::SimulatorPlugin, HeadlessPlugin));
    app
}

/// A Bevy app with no window, its pipelines compiled in the frame that asks for them, so the
/// first frames are drawn whole, and each frame rendered in the frame that simulated it.
pub fn headless_app() -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .build()
            // No event loop to wait on a display that may not exist; the caller's
            // `ScheduleRunnerPlugin` runs the frames.
            .disable::<bevy::winit::WinitPlugin>()
            // Rendering frame N while simulating N + 1 gains nothing when the renderer is the
            // CPU (lavapipe uses every core) and costs a frame of glass-to-glass delay.
            .disable::<bevy::render::pipelined_rendering::PipelinedRenderingPlugin>()
            .set(bevy::window::WindowPlugin {
                primary_window: None,
                exit_condition: bevy::window::ExitCondition::DontExit,
                ..default()
            })
            .set(bevy::render::RenderPlugin {
                synchronous_pipeline_compilation: true,
                ..default()
            })
            .set(log_plugin()),
    );
    app
}

/// Bevy's log on stderr, in colour only when stderr is a terminal: a log redirected to a file
/// stays plain text.
pub fn log_plugin() -> bevy::log::LogPlugin {
    bevy::log::LogPlugin {
        fmt_layer: |_| {
            Some(Box::new(
                bevy::log::tracing_subscriber::fmt::Layer::default()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            ))
        },
        ..default()
    }
}

/// A fixed time step per frame, however long the frame took to render.
#[derive(Debug, Clone)]
pub struct HeadlessPlugin;

impl Plugin for HeadlessPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(TimeUpdateStrategy::ManualDuration(FRAME_STEP));
    }
}

/// The head camera films the world for the stream into an off-screen image of `size`.
#[derive(Debug, Clone)]
pub struct OffScreenPlugin {
    pub size: UVec2,
}

impl Plugin for OffScreenPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<ReadinessPlugin>() {
            app.add_plugins(ReadinessPlugin);
        }
        app.insert_resource(OffScreenSize(self.size))
            .add_systems(PostStartup, render_head_off_screen);
    }
}

/// Counts the frames drawn with every pipeline compiled, for [`RendererReady`].
#[derive(Debug, Clone)]
pub struct ReadinessPlugin;

impl Plugin for ReadinessPlugin {
    fn build(&self, app: &mut App) {
        let ready = RendererReady::default();
        app.insert_resource(ready.clone());
        app.sub_app_mut(RenderApp)
            .insert_resource(ready)
            .add_systems(Render, note_pipelines_ready.in_set(RenderSystems::Cleanup));
    }
}

#[derive(Resource, Debug)]
struct OffScreenSize(UVec2);

/// The image the head camera renders into, and its size in pixels.
#[derive(Resource, Debug)]
pub struct OffScreen {
    pub image: Handle<Image>,
    pub size: UVec2,
}

/// Consecutive render frames with no pipeline waiting to compile, counted in the render world
/// and read in the main world.
#[derive(Resource, Clone, Debug, Default)]
pub struct RendererReady(Arc<AtomicU32>);

impl RendererReady {
    /// Whether the last few frames were drawn with every pipeline compiled: nothing in the
    /// scene is missing from the picture any more.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed) >= READY_FRAMES
    }
}

fn render_head_off_screen(
    mut commands: Commands,
    size: Res<OffScreenSize>,
    mut images: ResMut<Assets<Image>>,
    head: Single<(Entity, &mut Camera), With<Head>>,
) {
    let image = images.add(Image::new_target_texture(
        size.0.x,
        size.0.y,
        TextureFormat::Rgba8UnormSrgb,
        None,
    ));
    let (entity, mut camera) = head.into_inner();
    camera.is_active = true;
    commands
        .entity(entity)
        .insert(RenderTarget::Image(image.clone().into()));
    commands.insert_resource(OffScreen {
        image,
        size: size.0,
    });
}

fn note_pipelines_ready(cache: Res<PipelineCache>, ready: Res<RendererReady>) {
    if cache.waiting_pipelines().next().is_none() {
        ready.0.fetch_add(1, Ordering::Relaxed);
    } else {
        ready.0.store(0, Ordering::Relaxed);
    }
}
