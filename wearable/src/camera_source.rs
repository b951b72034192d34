//! The wearable's real camera: a V4L2 device, or GStreamer's test pattern, read as NV12 or
//! I420 frames of a fixed size. The newest frame is shown behind the scene and, once the link
//! is up, published to the relay with a fixed camera model, since such a camera has no
//! tracking.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bevy::camera::PerspectiveProjection;
use bevy::prelude::*;
use farsight_media::{Encoder, EncoderError, FrameInfo, RawFormat};
use farsight_protocol::{CameraModel, FrameSeq, Intrinsics, Micros, Pose};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::anchor::FramePublished;
use crate::encoder;
use crate::link::{LinkEvent, LinkOutbox, LinkStatus};
use crate::video_background::{VideoBackgroundMaterial, VideoFeed};

/// The horizontal field of view assumed for a camera that does not report its intrinsics:
/// typical of webcams and glasses' cameras. Marks land off target by as much as it is wrong.
pub const ASSUMED_HFOV_DEGREES: f64 = 70.0;

/// Frames a second asked of the camera; `videorate` makes up the difference.
const FRAME_RATE: i32 = 30;

/// Frames the sink may hold: the consumer only ever wants the newest.
const SINK_BUFFERS: u32 = 2;

/// How long `start` waits for the first frame, so a camera that cannot deliver the format is
/// reported there rather than later.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Where frames come from: `--camera test` is GStreamer's SMPTE colour bars, anything else a
/// V4L2 device path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSource {
    Device(PathBuf),
    /// The colour bars in whichever of NV12 and I420 negotiation picks, as a camera that
    /// offers both would give them.
    Test,
    /// The colour bars as a camera that gives only `format` would: NV12 or I420 reach the app
    /// as they are, anything else is converted. For tests of each layout.
    TestPattern {
        format: RawFormat,
    },
}

impl FromStr for CameraSource {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(if s == "test" {
            Self::Test
        } else {
            Self::Device(PathBuf::from(s))
        })
    }
}

impl fmt::Display for CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Device(path) => write!(f, "{}", path.display()),
            Self::Test => f.write_str("test pattern"),
            Self::TestPattern { format } => {
                write!(f, "test pattern in {}", format.caps_format())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("camera {device}: no such device")]
    NoSuchDevice { device: String },
    #[error("camera {device}: GStreamer element {element} is missing (install {package})")]
    ElementMissing {
        device: String,
        element: &'static str,
        package: &'static str,
    },
    #[error(
        "camera {device}: cannot capture {width}×{height} (width a multiple of 8, height even)"
    )]
    UnsupportedSize {
        device: String,
        width: u32,
        height: u32,
    },
    #[error("camera {device}: {reason}")]
    PipelineFailed { device: String, reason: String },
    #[error("camera {device}: no frame within {waited:?}")]
    NoFrame { device: String, waited: Duration },
    #[error("camera {device}: the camera stopped sending frames")]
    Ended { device: String },
}

/// One frame as the camera gave it.
#[derive(Clone, Debug)]
pub struct CameraFrame {
    /// Frames that arrived before this one, skipped ones included.
    pub number: u64,
    /// Wall-clock time the frame reached the app.
    pub capture: Micros,
    pub size: UVec2,
    /// How `yuv` is laid out, as negotiated with the camera: [`RawFormat::Nv12`] or
    /// [`RawFormat::I420`].
    pub format: RawFormat,
    /// BT.601 limited-range YUV 4:2:0 in `format`, with no row padding.
    pub yuv: Vec<u8>,
}

/// The layouts the app takes as they come, most preferred first: NV12 is what most UVC and
/// ISP cameras give natively.
const NATIVE_FORMATS: [RawFormat; 2] = [RawFormat::Nv12, RawFormat::I420];

/// The layout a sample's caps name, if it is one of [`NATIVE_FORMATS`].
fn sample_format(sample: &gst::Sample) -> Option<RawFormat> {
    let caps = sample.caps()?;
    let name = caps.structure(0)?.get::<&str>("format").ok()?;
    NATIVE_FORMATS
        .into_iter()
        .find(|format| format.caps_format() == name)
}

#[derive(Debug, Default)]
struct Newest {
    frame: Option<CameraFrame>,
    arrived: u64,
    /// Why the streaming thread could not use a frame.
    failure: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    newest: Mutex<Newest>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Newest> {
        self.newest.lock().expect("camera frame lock poisoned")
    }
}

/// The start of the pipeline for `source`: the V4L2 device or the test pattern.
fn source_description(source: &CameraSource, device: &str) -> Result<String, CameraError> {
    Ok(match source {
        CameraSource::Device(path) => {
            if !path.exists() {
                return Err(CameraError::NoSuchDevice {
                    device: device.to_owned(),
                });
            }
            let path = path.to_str().ok_or_else(|| CameraError::PipelineFailed {
                device: device.to_owned(),
                reason: "the device path is not UTF-8".into(),
            })?;
            format!("v4l2src device=\"{}\"", path.replace('"', "\\\""))
        }
        CameraSource::Test => "videotestsrc is-live=true pattern=smpte".to_owned(),
        CameraSource::TestPattern { format } => format!(
            "videotestsrc is-live=true pattern=smpte ! video/x-raw,format={}",
            format.caps_format()
        ),
    })
}

/// Every element the pipeline needs is installed, or which package to install is said.
fn check_elements(source: &CameraSource, device: &str) -> Result<(), CameraError> {
    let source_element = match source {
        CameraSource::Device(_) => ("v4l2src", "gstreamer1.0-plugins-good"),
        CameraSource::Test | CameraSource::TestPattern { .. } => {
            ("videotestsrc", "gstreamer1.0-plugins-base")
        }
    };
    for (element, package) in [
        source_element,
        ("videoconvert", "gstreamer1.0-plugins-base"),
        ("videoscale", "gstreamer1.0-plugins-base"),
        ("videorate", "gstreamer1.0-plugins-base"),
        ("appsink", "gstreamer1.0-plugins-base"),
    ] {
        if gst::ElementFactory::find(element).is_none() {
            return Err(CameraError::ElementMissing {
                device: device.to_owned(),
                element,
                package,
            });
        }
    }
    Ok(())
}

/// The caps the app takes frames in, at `size`.
///
/// One caps structure per format, in order: a source picks from a format list in its own
/// order, but from structures in theirs, so NV12 wins wherever the camera has it. videoconvert
/// passes either through untouched and converts anything else. bt601 is said outright:
/// GStreamer would pick BT.709 for HD sizes, and the shader and the encoder's caps both assume
/// BT.601.
fn native_caps(size: UVec2) -> String {
    NATIVE_FORMATS
        .map(|format| {
            format!(
                "video/x-raw,format={},width={},height={},framerate={FRAME_RATE}/1,\
                 colorimetry=bt601,pixel-aspect-ratio=1/1",
                format.caps_format(),
                size.x,
                size.y
            )
        })
        .join(";")
}

/// Keeps `sample` as the newest frame when it is a whole frame in a native layout, else notes
/// why it could not be used; wakes whoever waits for a frame either way.
fn keep_newest(sample: &gst::Sample, arrivals: &Shared, size: UVec2) {
    let capture = Micros::now();
    // Read from every sample's caps, so a renegotiation cannot mislabel frames.
    let format = sample_format(sample);
    let map = sample
        .buffer()
        .and_then(|buffer| buffer.map_readable().ok());
    let mut newest = arrivals.lock();
    match (format, map) {
        (None, _) => {
            newest.failure = Some(format!(
                "a frame in neither NV12 nor I420 (caps {:?})",
                sample.caps().map(|caps| caps.to_string())
            ));
        }
        (Some(_), None) => {
            newest.failure = Some("a frame without readable data".into());
        }
        (Some(format), Some(map)) if map.len() == format.frame_bytes(size.x, size.y) => {
            newest.frame = Some(CameraFrame {
                number: newest.arrived,
                capture,
                size,
                format,
                yuv: map.to_vec(),
            });
            newest.arrived += 1;
        }
        (Some(format), Some(map)) => {
            newest.failure = Some(format!(
                "a frame of {} bytes, expected {} for {}",
                map.len(),
                format.frame_bytes(size.x, size.y),
                format.caps_format()
            ));
        }
    }
    arrivals.changed.notify_all();
}

/// A running capture pipeline. Frames arrive on GStreamer's thread; only the newest is kept.
#[derive(Debug, Resource)]
pub struct CameraCapture {
    source: CameraSource,
    size: UVec2,
    pipeline: gst::Pipeline,
    shared: Arc<Shared>,
}

impl CameraCapture {
    /// Starts capturing `size` frames from `source` and waits for the first one.
    pub fn start(source: CameraSource, size: UVec2) -> Result<Self, CameraError> {
        let device = source.to_string();
        if size.x == 0 || size.y == 0 || !size.x.is_multiple_of(8) || !size.y.is_multiple_of(2) {
            return Err(CameraError::UnsupportedSize {
                device,
                width: size.x,
                height: size.y,
            });
        }
        gst::init().map_err(|e| CameraError::PipelineFailed {
            device: device.clone(),
            reason: format!("GStreamer would not initialise: {e}"),
        })?;
        let input = source_description(&source, &device)?;
        check_elements(&source, &device)?;
        let description = format!(
            "{input} ! videoconvert ! videoscale ! videorate ! {} ! \
             appsink name=sink max-buffers={SINK_BUFFERS} drop=true sync=false",
            native_caps(size)
        );
        let failed = |reason: String| CameraError::PipelineFailed {
            device: device.clone(),
            reason,
        };
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| failed(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| failed("no appsink in the pipeline".into()))?;

        let shared = Arc::new(Shared::default());
        let arrivals = shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    keep_newest(&sample, &arrivals, size);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        let capture = Self {
            source,
            size,
            pipeline,
            shared,
        };
        if let Err(e) = capture.pipeline.set_state(gst::State::Playing) {
            return Err(capture.bus_error().unwrap_or_else(|| failed(e.to_string())));
        }
        capture.wait_for_first_frame(FIRST_FRAME_TIMEOUT)?;
        Ok(capture)
    }

    pub fn source(&self) -> &CameraSource {
        &self.source
    }

    pub fn size(&self) -> UVec2 {
        self.size
    }

    /// The newest frame not taken yet, if one has arrived; an error once the pipeline failed.
    pub fn take_newest(&self) -> Result<Option<CameraFrame>, CameraError> {
        if let Some(e) = self.bus_error() {
            return Err(e);
        }
        let mut newest = self.shared.lock();
        if let Some(reason) = newest.failure.take() {
            return Err(self.failed(reason));
        }
        Ok(newest.frame.take())
    }

    /// Waits up to `timeout` for a frame newer than any taken so far.
    pub fn next_frame(&self, timeout: Duration) -> Result<CameraFrame, CameraError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.take_newest()? {
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CameraError::NoFrame {
                    device: self.source.to_string(),
                    waited: timeout,
                });
            }
            // Woken by a frame, or soon enough to notice an error on the bus.
            let newest = self.shared.lock();
            if newest.frame.is_none() {
                let wait = left.min(Duration::from_millis(50));
                drop(self.shared.changed.wait_timeout(newest, wait));
            }
        }
    }

    fn wait_for_first_frame(&self, timeout: Duration) -> Result<(), CameraError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.bus_error() {
                return Err(e);
            }
            let newest = self.shared.lock();
            if newest.arrived > 0 {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CameraError::NoFrame {
                    device: self.source.to_string(),
                    waited: timeout,
                });
            }
            drop(
                self.shared
                    .changed
                    .wait_timeout(newest, left.min(Duration::from_millis(50))),
            );
        }
    }

    /// The pipeline's first error or end of stream, as posted on its bus.
    fn bus_error(&self) -> Option<CameraError> {
        let bus = self.pipeline.bus()?;
        let message = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])?;
        match message.view() {
            gst::MessageView::Error(error) => {
                let reason = match error.debug() {
                    Some(debug) => format!("{} ({debug})", error.error()),
                    None => error.error().to_string(),
                };
                Some(self.failed(reason))
            }
            _ => Some(CameraError::Ended {
                device: self.source.to_string(),
            }),
        }
    }

    fn failed(&self, reason: String) -> CameraError {
        CameraError::PipelineFailed {
            device: self.source.to_string(),
            reason,
        }
    }
}

impl Drop for CameraCapture {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The camera model every frame is published with: the camera sits at the world's origin
/// looking down +Z (the protocol's convention, y down), with intrinsics from
/// [`ASSUMED_HFOV_DEGREES`]. Without tracking the world turns with the head.
pub fn fixed_camera_model(size: UVec2) -> CameraModel {
    CameraModel {
        pose: Pose::IDENTITY,
        intrinsics: Intrinsics::from_hfov(size.x, size.y, ASSUMED_HFOV_DEGREES.to_radians()),
    }
}

/// The Bevy camera that sees what [`fixed_camera_model`] describes, so marks anchored on the
/// published frames are drawn over the background where the agent put them.
pub fn fixed_camera_view(size: UVec2) -> (Transform, PerspectiveProjection) {
    let intrinsics = fixed_camera_model(size).intrinsics;
    let vertical_fov = 2.0 * (f64::from(size.y) / 2.0 / intrinsics.fy).atan();
    // Bevy looks down −Z with +Y up: a half turn about X from the protocol's camera frame.
    let transform = Transform::from_rotation(Quat::from_rotation_x(std::f32::consts::PI));
    let projection = PerspectiveProjection {
        fov: vertical_fov as f32,
        aspect_ratio: size.x as f32 / size.y as f32,
        ..default()
    };
    (transform, projection)
}

/// Shows the camera's newest frame on the video background and, once the link is up,
/// publishes every frame shown. Built from a capture already started, so a missing camera is
/// reported before the app runs.
#[derive(Debug)]
pub struct CameraSourcePlugin {
    capture: Mutex<Option<CameraCapture>>,
}

impl CameraSourcePlugin {
    pub fn new(capture: CameraCapture) -> Self {
        Self {
            capture: Mutex::new(Some(capture)),
        }
    }
}

impl Plugin for CameraSourcePlugin {
    fn build(&self, app: &mut App) {
        let capture = self
            .capture
            .lock()
            .expect("plugin lock poisoned")
            .take()
            .expect("the camera plugin is built once");
        app.insert_resource(capture)
            .init_resource::<NewestCameraFrame>()
            .init_resource::<CameraStream>()
            .add_message::<FramePublished>()
            .add_message::<LinkEvent>()
            .add_systems(
                Update,
                (
                    receive_camera_frame,
                    (show_camera_frame, publish_camera_frame)
                        .run_if(resource_changed::<NewestCameraFrame>),
                )
                    .chain(),
            )
            .add_systems(Update, answer_the_link);
    }
}

/// The frame on screen now, changed once per new frame from the camera.
#[derive(Resource, Debug, Default)]
pub struct NewestCameraFrame(pub Option<CameraFrame>);

#[derive(Resource, Debug, Default)]
struct CameraStream {
    encoder: Option<Encoder>,
    /// The layout the encoder was started for: it reads every frame pushed as that.
    format: Option<RawFormat>,
    /// The next published frame's sequence number.
    next_seq: u64,
    /// Publishing failed; the background still shows the camera.
    stopped: bool,
}

fn receive_camera_frame(
    capture: Res<CameraCapture>,
    mut newest: ResMut<NewestCameraFrame>,
    mut exit: MessageWriter<AppExit>,
) {
    match capture.take_newest() {
        Ok(Some(frame)) => newest.0 = Some(frame),
        Ok(None) => {}
        Err(e) => {
            error!(error = %e, "the camera failed");
            exit.write(AppExit::error());
        }
    }
}

fn show_camera_frame(
    newest: Res<NewestCameraFrame>,
    feed: Option<Res<VideoFeed>>,
    images: Option<ResMut<Assets<Image>>>,
    materials: Option<ResMut<Assets<VideoBackgroundMaterial>>>,
) {
    let (Some(frame), Some(feed), Some(mut images), Some(mut materials)) =
        (&newest.0, feed, images, materials)
    else {
        return;
    };
    if let Err(e) = feed.show(
        &mut images,
        &mut materials,
        frame.size,
        frame.format,
        &frame.yuv,
    ) {
        warn!(error = %e, "a camera frame does not fit the background");
    }
}

fn publish_camera_frame(
    newest: Res<NewestCameraFrame>,
    mut stream: ResMut<CameraStream>,
    link: Option<Res<LinkStatus>>,
    outbox: Option<ResMut<LinkOutbox>>,
    mut published: MessageWriter<FramePublished>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(frame) = &newest.0 else {
        return;
    };
    if stream.stopped {
        return;
    }
    if stream.encoder.is_none() {
        let (Some(link), Some(mut outbox)) = (link, outbox) else {
            return;
        };
        if link.session.is_none() {
            return;
        }
        let started = outbox
            .0
            .take()
            .ok_or(EncoderError::Missing("the link's frame channel"))
            .and_then(|out| encoder::start(frame.size.x, frame.size.y, frame.format, out));
        match started {
            Ok(encoder) => {
                info!(
                    width = frame.size.x,
                    height = frame.size.y,
                    format = frame.format.caps_format(),
                    "publishing the camera"
                );
                stream.encoder = Some(encoder);
                stream.format = Some(frame.format);
            }
            Err(e) => {
                error!(error = %e, "could not start the encoder");
                stream.stopped = true;
                exit.write(AppExit::error());
                return;
            }
        }
    }
    if stream.format != Some(frame.format) {
        error!(
            format = frame.format.caps_format(),
            "the camera changed format while publishing"
        );
        stream.stopped = true;
        exit.write(AppExit::error());
        return;
    }
    let info = FrameInfo {
        seq: FrameSeq(stream.next_seq),
        capture: frame.capture,
        camera: fixed_camera_model(frame.size),
    };
    let pushed = stream
        .encoder
        .as_ref()
        .expect("the encoder was just started")
        .push(info, frame.yuv.clone());
    if let Err(e) = pushed {
        error!(error = %e, "encoding failed");
        stream.stopped = true;
        exit.write(AppExit::error());
        return;
    }
    stream.next_seq += 1;
    published.write(FramePublished {
        seq: info.seq,
        camera: info.camera,
    });
}

fn answer_the_link(mut events: MessageReader<LinkEvent>, mut stream: ResMut<CameraStream>) {
    for event in events.read() {
        if let Some(encoder) = &mut stream.encoder {
            encoder::answer(encoder, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera_model::camera_model;
    use nalgebra::Point3;

    #[test]
    fn test_is_the_pattern_and_anything_else_a_device() {
        assert_eq!("test".parse::<CameraSource>(), Ok(CameraSource::Test));
        assert_eq!(
            "/dev/video2".parse::<CameraSource>(),
            Ok(CameraSource::Device("/dev/video2".into()))
        );
    }

    #[test]
    fn sizes_with_padded_rows_are_refused_before_opening_the_camera() {
        let err = CameraCapture::start(CameraSource::Test, UVec2::new(642, 360))
            .expect_err("642 is not a multiple of 8");
        assert!(matches!(err, CameraError::UnsupportedSize { .. }), "{err}");
    }

    #[test]
    fn the_fixed_camera_has_the_assumed_field_of_view() {
        let camera = fixed_camera_model(UVec2::new(640, 360));
        // A point on the right edge of the view, at the assumed half-angle.
        let half = (ASSUMED_HFOV_DEGREES / 2.0).to_radians();
        let edge = Point3::new(half.tan(), 0.0, 1.0);
        let pixel = camera.project(&edge).expect("in front of the camera");
        assert!((pixel.x - 640.0).abs() < 1e-6, "{pixel}");
        assert!((pixel.y - 180.0).abs() < 1e-6, "{pixel}");
    }

    #[test]
    fn the_bevy_view_agrees_with_the_published_camera_model() {
        let size = UVec2::new(640, 360);
        let (transform, projection) = fixed_camera_view(size);
        let seen = camera_model(&GlobalTransform::from(transform), &projection, size);
        let published = fixed_camera_model(size);
        for p in [
            Point3::new(0.0, 0.0, 1.0),
            Point3::new(0.3, -0.1, 0.8),
            Point3::new(-0.5, 0.2, 2.0),
        ] {
            let a = seen.project(&p).expect("in front");
            let b = published.project(&p).expect("in front");
            assert!((a - b).norm() < 0.01, "{p}: Bevy view {a}, published {b}");
        }
    }
}
