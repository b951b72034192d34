//! The real-camera path with GStreamer's SMPTE test pattern for a camera: frames of the right
//! size and layout (NV12 or I420) arriving in order, the video background showing them in the
//! colours the Rust reference converts them to (rendered headless with lavapipe, each
//! layout), publishing through the encoder with the fixed camera model, and a missing device
//! named in its error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bevy::app::ScheduleRunnerPlugin;
use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use bevy::render::view::Msaa;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use farsight_media::{Encoded, RawFormat};
use farsight_protocol::SessionId;
use farsight_wearable::anchor::FramePublished;
use farsight_wearable::camera_source::{
    CameraCapture, CameraError, CameraFrame, CameraSource, CameraSourcePlugin, NewestCameraFrame,
    fixed_camera_model,
};
use farsight_wearable::headless::headless_app;
use farsight_wearable::link::{LinkOutbox, LinkStatus};
use farsight_wearable::video_background::{
    VideoBackground, VideoBackgroundPlugin, i420_to_rgb, nv12_to_rgb,
};
use image::RgbImage;
use tokio::sync::mpsc;

const SIZE: UVec2 = UVec2::new(320, 240);
const FRAME_WAIT: Duration = Duration::from_secs(5);
/// Frames drawn after the first camera frame arrives before the picture is trusted: the
/// texture upload and the material's bind group take a frame or two.
const SETTLE_FRAMES: u32 = 10;
/// Frames after which a headless render that never produced a picture is a failure.
const GIVE_UP_FRAMES: u32 = 600;
/// Per channel, in 8-bit levels: the shader computes in f32 and the sRGB target rounds.
const TOLERANCE: u8 = 3;

/// The colours of the seven bars across the top of `videotestsrc`'s SMPTE pattern, left to
/// right (it draws them at full intensity).
const BARS: [(&str, [u8; 3]); 7] = [
    ("white", [255, 255, 255]),
    ("yellow", [255, 255, 0]),
    ("cyan", [0, 255, 255]),
    ("green", [0, 255, 0]),
    ("magenta", [255, 0, 255]),
    ("red", [255, 0, 0]),
    ("blue", [0, 0, 255]),
];

/// A box straight ahead, covering the middle of the picture (about 45 px across at the
/// default 45° field of view) below the bars' centres, in a colour the pattern lacks.
const BOX_SIZE: f32 = 0.3;
const BOX_DISTANCE: f32 = 2.0;
const BOX_RGB: [u8; 3] = [255, 128, 0];
/// Pixels from the picture's centre: inside, the box; beyond, the background.
const BOX_INNER_PX: u32 = 15;
const BOX_OUTER_PX: u32 = 32;

/// The centre of bar `i` (of seven across the top two thirds).
fn bar_centre(i: u32) -> (u32, u32) {
    ((2 * i + 1) * SIZE.x / 14, SIZE.y / 3)
}

fn close(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= tolerance)
}

/// Five frames from `source`, checked to be of [`SIZE`] in `format` and to arrive in order.
fn five_frames(source: CameraSource, format: RawFormat) -> Result<Vec<CameraFrame>> {
    let capture = CameraCapture::start(source, SIZE)?;
    let mut frames: Vec<CameraFrame> = Vec::new();
    for _ in 0..5 {
        frames.push(capture.next_frame(FRAME_WAIT)?);
    }
    for frame in &frames {
        ensure!(frame.size == SIZE, "a {} frame", frame.size);
        ensure!(
            frame.format == format,
            "frame {}: {:?}, not {format:?}",
            frame.number,
            frame.format
        );
        ensure!(
            frame.yuv.len() == (SIZE.x * SIZE.y * 3 / 2) as usize,
            "frame {}: {} bytes of {format:?} for {SIZE}",
            frame.number,
            frame.yuv.len()
        );
    }
    for pair in frames.windows(2) {
        ensure!(
            pair[1].capture > pair[0].capture && pair[1].number > pair[0].number,
            "frame {} captured at {:?} after frame {} at {:?}",
            pair[1].number,
            pair[1].capture,
            pair[0].number,
            pair[0].capture
        );
    }
    // Live at 30 frames a second: five frames span 133 ms, not a burst (with room for a
    // busy machine's late deliveries).
    let span = frames[4].capture.0 - frames[0].capture.0;
    ensure!(span > 60_000, "five frames within {span} µs");
    Ok(frames)
}

#[test]
fn the_test_source_gives_i420_frames_of_the_asked_size_in_order() -> Result<()> {
    let format = RawFormat::I420;
    five_frames(CameraSource::TestPattern { format }, format).map(drop)
}

#[test]
fn the_test_source_gives_nv12_frames_of_the_asked_size_in_order() -> Result<()> {
    let format = RawFormat::Nv12;
    five_frames(CameraSource::TestPattern { format }, format).map(drop)
}

#[test]
fn a_source_that_offers_both_layouts_is_taken_as_nv12() -> Result<()> {
    five_frames(CameraSource::Test, RawFormat::Nv12).map(drop)
}

#[test]
fn a_source_in_neither_layout_is_converted_to_nv12() -> Result<()> {
    let source = CameraSource::TestPattern {
        format: RawFormat::Rgba,
    };
    five_frames(source, RawFormat::Nv12).map(drop)
}

#[test]
fn a_missing_device_is_named_in_the_error() {
    let err = CameraCapture::start(CameraSource::Device("/dev/video-nope".into()), SIZE)
        .expect_err("there is no /dev/video-nope");
    assert!(
        matches!(&err, CameraError::NoSuchDevice { device } if device == "/dev/video-nope"),
        "{err:?}"
    );
    assert!(err.to_string().contains("/dev/video-nope"), "{err}");
}

#[test]
fn a_device_that_is_no_camera_fails_with_its_name_and_why() {
    let err = CameraCapture::start(CameraSource::Device("/dev/null".into()), SIZE)
        .expect_err("/dev/null is no camera");
    assert!(
        matches!(&err, CameraError::PipelineFailed { device, .. } if device == "/dev/null"),
        "{err:?}"
    );
}

/// What the headless render produced: the picture and the camera frame on screen.
#[derive(Resource, Clone, Default)]
struct Shot(Arc<Mutex<Option<(RgbImage, CameraFrame)>>>);

#[derive(Resource)]
struct Target(Handle<Image>);

#[derive(Resource, Default)]
struct Progress {
    frames: u32,
    shown_for: u32,
    requested: bool,
}

fn spawn_scene(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
) {
    let target = images.add(Image::new_target_texture(
        SIZE.x,
        SIZE.y,
        TextureFormat::Rgba8UnormSrgb,
        None,
    ));
    commands.spawn((
        Camera3d::default(),
        RenderTarget::Image(target.clone().into()),
        Tonemapping::None,
        Msaa::Off,
        VideoBackground,
    ));
    // Something in the world, which the background must stay behind.
    commands.spawn((
        Mesh3d(meshes.add(Cuboid::from_length(BOX_SIZE))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb_u8(BOX_RGB[0], BOX_RGB[1], BOX_RGB[2]),
            unlit: true,
            ..default()
        })),
        Transform::from_xyz(0.0, 0.0, -BOX_DISTANCE),
    ));
    commands.insert_resource(Target(target));
}

fn take_picture(
    mut commands: Commands,
    mut progress: ResMut<Progress>,
    newest: Res<NewestCameraFrame>,
    target: Res<Target>,
    shot: Res<Shot>,
    mut exit: MessageWriter<AppExit>,
) {
    progress.frames += 1;
    if progress.frames > GIVE_UP_FRAMES {
        error!("no picture after {GIVE_UP_FRAMES} frames");
        exit.write(AppExit::error());
        return;
    }
    let Some(frame) = &newest.0 else {
        return;
    };
    progress.shown_for += 1;
    if progress.requested || progress.shown_for < SETTLE_FRAMES {
        return;
    }
    progress.requested = true;
    let (frame, shot) = (frame.clone(), shot.0.clone());
    commands.spawn(Screenshot::image(target.0.clone())).observe(
        move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            let picture = captured
                .image
                .clone()
                .try_into_dynamic()
                .map(|image| image.to_rgb8());
            match picture {
                Ok(picture) => {
                    *shot.lock().expect("shot lock") = Some((picture, frame.clone()));
                    exit.write(AppExit::Success);
                }
                Err(e) => {
                    error!(error = %e, "the read-back is not a picture");
                    exit.write(AppExit::error());
                }
            }
        },
    );
}

/// Renders the video background with the test pattern in `format` behind an otherwise empty
/// scene.
fn render_test_pattern(format: RawFormat) -> Result<(RgbImage, CameraFrame)> {
    let capture = CameraCapture::start(CameraSource::TestPattern { format }, SIZE)?;
    let shot = Shot::default();
    let mut app = headless_app();
    app.add_plugins((
        ScheduleRunnerPlugin::run_loop(Duration::ZERO),
        VideoBackgroundPlugin { size: SIZE },
        CameraSourcePlugin::new(capture),
    ))
    .insert_resource(shot.clone())
    .init_resource::<Progress>()
    .add_systems(Startup, spawn_scene)
    .add_systems(Last, take_picture);
    ensure!(
        app.run() == AppExit::Success,
        "the headless render failed; it needs a Vulkan driver (Debian: mesa-vulkan-drivers)"
    );
    let taken = shot.0.lock().expect("shot lock").take();
    taken.context("the app ended without a picture")
}

#[test]
fn the_background_shows_i420_bars_in_the_reference_colours_behind_the_scene() -> Result<()> {
    background_matches_the_reference(RawFormat::I420)
}

#[test]
fn the_background_shows_nv12_bars_in_the_reference_colours_behind_the_scene() -> Result<()> {
    background_matches_the_reference(RawFormat::Nv12)
}

/// Every pixel of the rendered test pattern in `format` against the Rust reference for that
/// layout.
fn background_matches_the_reference(format: RawFormat) -> Result<()> {
    let (picture, frame) = render_test_pattern(format)?;
    ensure!(
        (picture.width(), picture.height()) == (SIZE.x, SIZE.y),
        "a {}×{} picture",
        picture.width(),
        picture.height()
    );
    ensure!(frame.format == format, "a {:?} frame", frame.format);
    let reference = match format {
        RawFormat::Nv12 => nv12_to_rgb(&frame.yuv, frame.size),
        _ => i420_to_rgb(&frame.yuv, frame.size),
    }
    .with_context(|| format!("a {format:?} frame"))?;
    let mut failures = Vec::new();
    for (i, (name, nominal)) in BARS.iter().enumerate() {
        let (x, y) = bar_centre(i as u32);
        let expected = reference.get_pixel(x, y).0;
        // The reference itself decodes the pattern's bars: the conversion is BT.601.
        if !close(expected, *nominal, 6) {
            failures.push(format!(
                "{name} bar: the reference gives {expected:?}, not about {nominal:?}"
            ));
        }
        let got = picture.get_pixel(x, y).0;
        if !close(got, expected, TOLERANCE) {
            failures.push(format!(
                "{name} bar at ({x}, {y}): rendered {got:?}, reference {expected:?}"
            ));
        }
    }
    // Every pixel but the box's, the pattern's darker and unsaturated patches below the bars
    // included: the bars alone are primaries, clamped the same however the matrix is wrong.
    let centre = SIZE / 2;
    for (x, y, got) in picture.enumerate_pixels() {
        let from_centre = x.abs_diff(centre.x).max(y.abs_diff(centre.y));
        if from_centre <= BOX_INNER_PX {
            if !close(got.0, BOX_RGB, TOLERANCE) {
                failures.push(format!(
                    "({x}, {y}): rendered {:?}, the box is {BOX_RGB:?}",
                    got.0
                ));
            }
            continue;
        }
        if from_centre <= BOX_OUTER_PX {
            continue;
        }
        let want = reference.get_pixel(x, y).0;
        if !close(got.0, want, TOLERANCE) {
            failures.push(format!(
                "({x}, {y}): rendered {:?}, reference {want:?}",
                got.0
            ));
        }
    }
    if !failures.is_empty() {
        let shown = failures.len().min(20);
        bail!(
            "{} mismatches:\n{}",
            failures.len(),
            failures[..shown].join("\n")
        );
    }
    Ok(())
}

/// Stands in for the link: a session and the channel the encoder writes to.
fn linked_app(capture: CameraCapture) -> (App, mpsc::Receiver<Encoded>) {
    let (tx, rx) = mpsc::channel(64);
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, CameraSourcePlugin::new(capture)))
        .insert_resource(LinkStatus {
            session: Some(SessionId(1)),
        })
        .insert_resource(LinkOutbox(Some(tx)));
    (app, rx)
}

#[test]
fn camera_frames_are_published_as_h264_with_the_fixed_camera() -> Result<()> {
    let capture = CameraCapture::start(CameraSource::Test, SIZE)?;
    let (mut app, mut rx) = linked_app(capture);
    let mut published: Vec<FramePublished> = Vec::new();
    let mut encoded = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while encoded.len() < 5 {
        ensure!(
            std::time::Instant::now() < deadline,
            "{} frames published, {} encoded within 30 s",
            published.len(),
            encoded.len()
        );
        app.update();
        let messages = app.world().resource::<Messages<FramePublished>>();
        published.extend(messages.iter_current_update_messages().cloned());
        while let Ok(out) = rx.try_recv() {
            match out {
                Encoded::Frame(object) => encoded.push(object),
                Encoded::End => bail!("the stream ended"),
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let camera = fixed_camera_model(SIZE);
    ensure!(
        encoded[0].flags.keyframe,
        "the first frame is not a key frame"
    );
    for (i, object) in encoded.iter().enumerate() {
        ensure!(
            object.frame.0 == i as u64,
            "frame {} in place {i}",
            object.frame.0
        );
        ensure!(object.camera == camera, "frame {i}: {:?}", object.camera);
        ensure!(
            object.payload.starts_with(&[0, 0, 0, 1]),
            "frame {i} is not Annex B"
        );
        let announced = published
            .iter()
            .find(|p| p.seq == object.frame)
            .with_context(|| format!("frame {i} was encoded without a FramePublished"))?;
        ensure!(
            announced.camera == camera,
            "frame {i} announced with another camera"
        );
    }
    Ok(())
}
