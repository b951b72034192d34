//! H.264 for the relay: raw frames (a render's RGBA, a camera's NV12 or I420) pushed through
//! `appsrc`, or GStreamer's own moving test picture, go through one pipeline (`videoscale !
//! videoconvert ! <H.264 encoder>`, hardware when asked and present, else x264; tuned for
//! latency) that follows the resolution ladder. Each encoded access unit comes out as a
//! protocol `Object` carrying its frame's sequence number, capture time and camera, the camera
//! scaled to the encoded picture.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use farsight_protocol::{CameraModel, FrameSeq, Micros, Object, ObjectFlags};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::h264::{H264Element, X264, choose_h264, set_from_str};
use crate::ladder::{FULL_FPS, Ladder, Rung};

/// Frames per group of pictures: a watcher joining late waits at most a second for a key
/// frame of its own, though the relay's cached group shows it a picture at once.
pub const KEYFRAME_INTERVAL: u32 = 30;

/// Starting bit rate, kbit/s; `BitrateHint` lowers it.
pub const BITRATE_KBPS: u32 = 2000;

/// Set to `x264` to use the software encoder even where a hardware one exists.
pub const ENCODER_VAR: &str = "FARSIGHT_ENCODER";

/// Raw frames the encoder may hold before `push` blocks: the producer waits for a slow
/// encoder rather than piling up pictures.
const QUEUED_FRAMES: u64 = 4;

/// Encoded frames the sink holds for a live test picture, whose source does not wait for
/// anyone: beyond this the pipeline stalls instead of growing.
const TEST_PATTERN_SINK_BUFFERS: u32 = 8;

/// What the encoder hands on: encoded frames in order, then `End` once a finished stream has
/// been flushed. A channel that closes without `End` means the encoder failed or was stopped.
#[derive(Debug)]
pub enum Encoded {
    Frame(Object),
    End,
}

/// A raw frame, as the camera saw it.
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    pub seq: FrameSeq,
    /// Wall-clock time the frame was captured (rendered, read from the camera).
    pub capture: Micros,
    pub camera: CameraModel,
}

/// How raw frames are laid out: a render's read-back is RGBA, a camera gives NV12 or I420.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFormat {
    /// 4 bytes a pixel, rows top to bottom.
    Rgba,
    /// BT.601 limited range: the Y plane, then the U and V planes at half width and height.
    I420,
    /// BT.601 limited range: the Y plane, then one plane of U, V pairs at half width and
    /// height.
    Nv12,
}

impl RawFormat {
    /// Bytes in one `width` × `height` frame (YUV without row padding: an even size).
    pub fn frame_bytes(self, width: u32, height: u32) -> usize {
        let pixels = width as usize * height as usize;
        match self {
            Self::Rgba => pixels * 4,
            Self::I420 | Self::Nv12 => pixels * 3 / 2,
        }
    }

    /// The format as GStreamer's caps name it.
    pub fn caps_format(self) -> &'static str {
        match self {
            Self::Rgba => "RGBA",
            Self::I420 => "I420",
            Self::Nv12 => "NV12",
        }
    }

    /// Said outright for YUV, which GStreamer would otherwise guess from the picture's size.
    fn colorimetry(self) -> Option<&'static str> {
        match self {
            Self::Rgba => None,
            Self::I420 | Self::Nv12 => Some("bt601"),
        }
    }
}

/// The camera of a test-picture frame, asked as the frame enters the encoder.
pub type CameraAt = Arc<dyn Fn() -> CameraModel + Send + Sync>;

/// Where the encoder's raw frames come from.
#[derive(Clone)]
pub enum Input {
    /// Frames handed to [`Encoder::push`], in this layout.
    Frames(RawFormat),
    /// GStreamer's moving ball, live at the settings' rate, for a publisher without a camera:
    /// frames are numbered from 0 as they enter the encoder, each with the camera `camera`
    /// gives then.
    TestPattern { camera: CameraAt },
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frames(format) => f.debug_tuple("Frames").field(format).finish(),
            Self::TestPattern { .. } => f.write_str("TestPattern"),
        }
    }
}

/// The picture, rate and bit rate to encode at, and which encoder may do it.
#[derive(Clone, Debug)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    /// Frames per second of the raw frames; pushed frames are stamped `seq / fps` seconds.
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Frames per group of pictures.
    pub keyframe_interval: u32,
    /// Try a hardware H.264 encoder first (x264 where none starts); [`ENCODER_VAR`] set to
    /// `x264` says no. Off, x264 always.
    pub hardware: bool,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: FULL_FPS,
            bitrate_kbps: BITRATE_KBPS,
            keyframe_interval: KEYFRAME_INTERVAL,
            hardware: false,
        }
    }
}

impl EncoderSettings {
    /// Nanoseconds between raw frames: the timestamp step of pushed frames.
    fn frame_step_ns(&self) -> u64 {
        1_000_000_000 / u64::from(self.fps.max(1))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("GStreamer: {0}")]
    Glib(#[from] gst::glib::Error),
    #[error("GStreamer element missing: {0} (install gstreamer1.0-plugins-ugly for x264enc)")]
    Missing(&'static str),
    #[error("GStreamer pipeline would not start: {0}")]
    State(#[from] gst::StateChangeError),
    #[error("frame {seq}: {got} bytes of {format:?} for a {width}×{height} encoder")]
    WrongSize {
        seq: u64,
        got: usize,
        format: RawFormat,
        width: u32,
        height: u32,
    },
    #[error("frame {seq}: the encoder refused it ({flow:?})")]
    Refused { seq: u64, flow: gst::FlowError },
    #[error("frame {seq}: this encoder makes its own test picture and takes no frames")]
    NotPushable { seq: u64 },
}

/// Raw caps for the encoded picture's size; square pixels, so a rung that rounds its width
/// is stretched by under a pixel rather than given a pixel aspect ratio.
fn size_caps(width: u32, height: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("width", i32::try_from(width).unwrap_or(i32::MAX))
        .field("height", i32::try_from(height).unwrap_or(i32::MAX))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

/// A frame rate as one frame per `step_ns` nanoseconds: the exact rate frames are stamped at.
fn rate_of_step(step_ns: u64) -> gst::Fraction {
    gst::Fraction::new(
        1_000_000_000,
        i32::try_from(step_ns).expect("a frame step under 2 s"),
    )
}

/// Frames inside the encoder, matched to what comes out by presentation timestamp.
#[derive(Clone, Debug, Default)]
struct InFlight(Arc<Mutex<VecDeque<(u64, FrameInfo)>>>);

impl InFlight {
    /// More than an encoder ever holds; beyond it, frames that never came out are forgotten.
    const MAX_PENDING: usize = 256;

    fn entered(&self, pts: u64, info: FrameInfo) {
        let mut queue = self.0.lock().expect("in-flight lock poisoned");
        if queue.len() == Self::MAX_PENDING {
            queue.pop_front();
        }
        queue.push_back((pts, info));
    }

    /// The frame that was encoded into a buffer stamped `pts`; frames the encoder skipped
    /// are discarded on the way, since frames come out in order.
    fn left(&self, pts: Option<u64>) -> Option<FrameInfo> {
        let mut queue = self.0.lock().expect("in-flight lock poisoned");
        while let Some((entered, info)) = queue.pop_front() {
            if Some(entered) == pts {
                return Some(info);
            }
        }
        None
    }
}

/// Where raw frames enter.
#[derive(Debug)]
enum Source {
    App {
        src: gst_app::AppSrc,
        format: RawFormat,
    },
    TestPattern,
}

#[derive(Debug)]
pub struct Encoder {
    pipeline: gst::Pipeline,
    source: Source,
    h264: H264Element,
    video_encoder: gst::Element,
    /// The capsfilter that sets the encoded picture's size.
    scale_to: gst::Element,
    sink: gst_app::AppSink,
    in_flight: InFlight,
    settings: EncoderSettings,
    ladder: Ladder,
    rung: Rung,
    /// Set once the pipeline is stopped on purpose, so the drain thread ends quietly.
    stopping: Arc<AtomicBool>,
}

/// The elements of a launched pipeline that the encoder drives.
struct Parts {
    pipeline: gst::Pipeline,
    source: Source,
    video_encoder: gst::Element,
    scale_to: gst::Element,
    sink: gst_app::AppSink,
}

impl Encoder {
    /// Starts the pipeline; encoded frames go to `out` until the stream ends ([`Encoder::finish`])
    /// or the encoder is stopped.
    pub fn start(
        settings: &EncoderSettings,
        input: Input,
        out: mpsc::Sender<Encoded>,
    ) -> Result<Self, EncoderError> {
        gst::init()?;
        let h264 = if settings.hardware {
            let forced = std::env::var(ENCODER_VAR).ok();
            choose_h264(
                |name| gst::ElementFactory::find(name).is_some(),
                forced.as_deref(),
            )
        } else {
            X264
        };
        match Self::start_with(h264, settings, input.clone(), out.clone()) {
            Err(e) if h264.hardware => {
                tracing::warn!(encoder = h264.name, error = %e, "hardware encoder failed; using x264");
                Self::start_with(X264, settings, input, out)
            }
            started => started,
        }
    }

    fn start_with(
        h264: H264Element,
        settings: &EncoderSettings,
        input: Input,
        out: mpsc::Sender<Encoded>,
    ) -> Result<Self, EncoderError> {
        let parts = launch(h264, settings, &input)?;
        let in_flight = InFlight::default();
        if let Input::TestPattern { camera } = input {
            number_test_frames(&parts.video_encoder, &in_flight, camera)?;
        }
        if let Err(e) = parts.pipeline.set_state(gst::State::Playing) {
            let _ = parts.pipeline.set_state(gst::State::Null);
            return Err(e.into());
        }
        tracing::info!(
            encoder = h264.name,
            hardware = h264.hardware,
            width = settings.width,
            height = settings.height,
            "H.264 encoder started"
        );
        let stopping = Arc::new(AtomicBool::new(false));
        let (pull, frames, stopped) = (parts.sink.clone(), in_flight.clone(), stopping.clone());
        std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || drain(&pull, &frames, &out, &stopped))
            .expect("spawning a thread");
        let ladder = Ladder::new((settings.width, settings.height));
        Ok(Self {
            pipeline: parts.pipeline,
            source: parts.source,
            h264,
            video_encoder: parts.video_encoder,
            scale_to: parts.scale_to,
            sink: parts.sink,
            in_flight,
            settings: settings.clone(),
            rung: ladder.current(),
            ladder,
            stopping,
        })
    }

    /// Encodes one frame: `raw` is `width` × `height` pixels in the encoder's format (4 bytes
    /// each for RGBA, rows top to bottom). Blocks while the encoder is a few frames behind.
    pub fn push(&self, info: FrameInfo, raw: Vec<u8>) -> Result<(), EncoderError> {
        let Source::App { src, format } = &self.source else {
            return Err(EncoderError::NotPushable { seq: info.seq.0 });
        };
        let (width, height) = (self.settings.width, self.settings.height);
        if raw.len() != format.frame_bytes(width, height) {
            return Err(EncoderError::WrongSize {
                seq: info.seq.0,
                got: raw.len(),
                format: *format,
                width,
                height,
            });
        }
        // A rung's lower frame rate keeps every other frame, each with its own timestamp, so
        // what comes out still matches what went in.
        let keep_every = u64::from(FULL_FPS / self.rung.fps.max(1)).max(1);
        if !info.seq.0.is_multiple_of(keep_every) {
            return Ok(());
        }
        let step = self.settings.frame_step_ns();
        let pts = step * info.seq.0;
        let mut buffer = gst::Buffer::from_mut_slice(raw);
        {
            let buffer = buffer.get_mut().expect("a buffer just made has one owner");
            buffer.set_pts(gst::ClockTime::from_nseconds(pts));
            buffer.set_duration(gst::ClockTime::from_nseconds(step * keep_every));
        }
        self.in_flight.entered(pts, info);
        src.push_buffer(buffer)
            .map(|_| ())
            .map_err(|flow| EncoderError::Refused {
                seq: info.seq.0,
                flow,
            })
    }

    /// No more frames: the encoder flushes what it holds and then says `End`.
    pub fn finish(&self) {
        match &self.source {
            Source::App { src, .. } => {
                let _ = src.end_of_stream();
            }
            Source::TestPattern => {
                let _ = self.pipeline.send_event(gst::event::Eos::new());
            }
        }
    }

    /// Stops at once, without flushing: the channel closes without `End`.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// Asks the encoder for a key frame now, with its SPS and PPS (answers a
    /// `KeyframeRequest`).
    pub fn force_keyframe(&self) {
        let event = gst::event::CustomUpstream::new(
            gst::Structure::builder("GstForceKeyUnit")
                .field("all-headers", true)
                .build(),
        );
        self.sink.send_event(event);
    }

    /// Changes the target bit rate while running (within 100 kbit/s to 50 Mbit/s).
    pub fn set_bitrate(&self, bits_per_second: u64) {
        self.h264.set_bitrate(
            &self.video_encoder,
            bits_per_second,
            self.settings.keyframe_interval,
        );
    }

    /// Encodes at `rung`'s size and frame rate from the next frame on, starting with a key
    /// frame so watchers get the new size's SPS and PPS at once.
    pub fn set_rung(&mut self, rung: &Rung) {
        if (rung.width, rung.height) != (self.rung.width, self.rung.height) {
            self.scale_to
                .set_property("caps", size_caps(rung.width, rung.height));
        }
        if rung.fps != self.rung.fps
            && let Source::App { src, .. } = &self.source
        {
            // x264 at zero latency budgets bits per frame from the caps' rate, not from
            // timestamps: the caps say the rate the frames really come at.
            let step = self.settings.frame_step_ns() * u64::from(FULL_FPS / rung.fps.max(1));
            if let Some(caps) = src.caps() {
                let mut caps = caps.copy();
                caps.make_mut().set("framerate", rate_of_step(step));
                src.set_caps(Some(&caps));
            }
        }
        tracing::info!(
            width = rung.width,
            height = rung.height,
            fps = rung.fps,
            "encoding at a new size"
        );
        self.rung = *rung;
        self.force_keyframe();
    }

    /// The rung being encoded.
    pub fn rung(&self) -> Rung {
        self.rung
    }

    /// Answers a `BitrateHint`: moves along the ladder when the hint says so, and sets the bit
    /// rate the rung can use. Returns the new rung when it changed.
    pub fn follow_hint(&mut self, bits_per_second: u64) -> Option<Rung> {
        let changed = self.ladder.on_hint(bits_per_second);
        if let Some(rung) = changed {
            self.set_rung(&rung);
        }
        self.set_bitrate(self.rung.bitrate_for(bits_per_second));
        changed
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds the pipeline for `input` around `h264`, set up but not yet playing.
fn launch(
    h264: H264Element,
    settings: &EncoderSettings,
    input: &Input,
) -> Result<Parts, EncoderError> {
    let (width, height) = (settings.width, settings.height);
    let (source, sink_options) = match input {
        Input::Frames(_) => ("appsrc name=src".to_owned(), String::new()),
        Input::TestPattern { .. } => (
            format!(
                "videotestsrc is-live=true pattern=ball ! \
                 video/x-raw,width={width},height={height},framerate={}/1",
                settings.fps
            ),
            format!(" max-buffers={TEST_PATTERN_SINK_BUFFERS}"),
        ),
    };
    // Scaling before the conversion to YUV converts the smaller picture; at the source's
    // size videoscale passes frames through untouched.
    let description = format!(
        "{source} ! videoscale add-borders=false ! capsfilter name=size ! \
         videoconvert ! {} name=enc ! \
         video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! \
         appsink name=sink sync=false{sink_options}",
        h264.name
    );
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| EncoderError::Missing("pipeline"))?;
    let video_encoder = pipeline
        .by_name("enc")
        .ok_or(EncoderError::Missing(h264.name))?;
    for (property, value) in h264.settings(settings.keyframe_interval) {
        set_from_str(&video_encoder, property, &value);
    }
    h264.set_bitrate(
        &video_encoder,
        u64::from(settings.bitrate_kbps) * 1000,
        settings.keyframe_interval,
    );
    let scale_to = pipeline
        .by_name("size")
        .ok_or(EncoderError::Missing("capsfilter"))?;
    scale_to.set_property("caps", size_caps(width, height));
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or(EncoderError::Missing("appsink"))?;
    let source = match input {
        Input::Frames(format) => Source::App {
            src: app_source(&pipeline, settings, *format)?,
            format: *format,
        },
        Input::TestPattern { .. } => Source::TestPattern,
    };
    Ok(Parts {
        pipeline,
        source,
        video_encoder,
        scale_to,
        sink,
    })
}

/// The pipeline's `appsrc`, told the frames' layout and rate; pushing blocks once a few
/// frames wait.
fn app_source(
    pipeline: &gst::Pipeline,
    settings: &EncoderSettings,
    format: RawFormat,
) -> Result<gst_app::AppSrc, EncoderError> {
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or(EncoderError::Missing("appsrc"))?;
    let (width, height) = (settings.width, settings.height);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", format.caps_format())
        .field("width", i32::try_from(width).unwrap_or(i32::MAX))
        .field("height", i32::try_from(height).unwrap_or(i32::MAX))
        .field("framerate", rate_of_step(settings.frame_step_ns()))
        .field_if_some("colorimetry", format.colorimetry())
        .build();
    src.set_caps(Some(&caps));
    src.set_format(gst::Format::Time);
    src.set_is_live(true);
    src.set_block(true);
    src.set_max_bytes(QUEUED_FRAMES * format.frame_bytes(width, height) as u64);
    Ok(src)
}

/// Numbers the test picture's frames as they reach the encoder, stamping each with the time
/// and `camera`, so what comes out carries them and `capture` counts the encoder's delay.
fn number_test_frames(
    video_encoder: &gst::Element,
    in_flight: &InFlight,
    camera: CameraAt,
) -> Result<(), EncoderError> {
    let pad = video_encoder
        .static_pad("sink")
        .ok_or(EncoderError::Missing("H.264 encoder sink pad"))?;
    let next = AtomicU64::new(0);
    let record = in_flight.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
            && let Some(pts) = buffer.pts()
        {
            let seq = next.fetch_add(1, Ordering::Relaxed);
            let frame = FrameInfo {
                seq: FrameSeq(seq),
                capture: Micros::now(),
                camera: camera(),
            };
            record.entered(pts.nseconds(), frame);
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// The encoder thread: pulls access units until end of stream, pairs each with its frame.
fn drain(
    sink: &gst_app::AppSink,
    in_flight: &InFlight,
    out: &mpsc::Sender<Encoded>,
    stopping: &AtomicBool,
) {
    loop {
        let sample = match sink.pull_sample() {
            Ok(sample) => sample,
            Err(_) if sink.is_eos() => {
                let _ = out.blocking_send(Encoded::End);
                return;
            }
            Err(_) if stopping.load(Ordering::Acquire) => return,
            Err(_) => {
                tracing::error!("the encoder stopped before the end of the stream");
                return;
            }
        };
        let Some(object) = encoded_object(&sample, in_flight) else {
            continue;
        };
        if out.blocking_send(Encoded::Frame(object)).is_err() {
            return;
        }
    }
}

/// One encoded access unit with the frame it was made from, if that frame is known.
fn encoded_object(sample: &gst::Sample, in_flight: &InFlight) -> Option<Object> {
    let buffer = sample.buffer()?;
    // x264enc moves its output 1000 hours on (room for negative decode times); the running
    // time is the raw frame's timestamp again.
    let pts = buffer
        .pts()
        .and_then(|pts| {
            sample
                .segment()
                .and_then(|segment| segment.downcast_ref::<gst::ClockTime>())
                .and_then(|segment| segment.to_running_time(pts))
        })
        .map(|t| t.nseconds());
    let Some(info) = in_flight.left(pts) else {
        tracing::warn!(?pts, "an encoded frame that matches no raw frame");
        return None;
    };
    let map = buffer.map_readable().ok()?;
    // The camera was measured on the raw picture; watchers place marks on the encoded one,
    // which the ladder may have scaled.
    let mut camera = info.camera;
    if let Some((width, height)) = picture_size(sample)
        && (width, height) != (camera.intrinsics.width, camera.intrinsics.height)
    {
        camera.intrinsics = camera.intrinsics.scaled_to(width, height);
    }
    Some(Object {
        frame: info.seq,
        capture: info.capture,
        flags: ObjectFlags {
            keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
        },
        camera,
        payload: Bytes::copy_from_slice(&map),
    })
}

/// The encoded picture's size, from the sample's caps.
fn picture_size(sample: &gst::Sample) -> Option<(u32, u32)> {
    let caps = sample.caps()?;
    let structure = caps.structure(0)?;
    let width = structure.get::<i32>("width").ok()?;
    let height = structure.get::<i32>("height").ok()?;
    Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use farsight_protocol::{Intrinsics, Pose};

    /// An encoder for `width` × `height` frames in `format`, as a wearable starts one.
    fn start(
        width: u32,
        height: u32,
        format: RawFormat,
        out: mpsc::Sender<Encoded>,
    ) -> Result<Encoder, EncoderError> {
        let settings = EncoderSettings {
            width,
            height,
            hardware: true,
            ..EncoderSettings::default()
        };
        Encoder::start(&settings, Input::Frames(format), out)
    }

    fn info(seq: u64) -> FrameInfo {
        FrameInfo {
            seq: FrameSeq(seq),
            capture: Micros(seq),
            camera: CameraModel {
                pose: Pose::default(),
                intrinsics: Intrinsics::from_hfov(64, 48, 1.0),
            },
        }
    }

    #[test]
    fn encoded_frames_find_their_frame_past_skipped_ones() {
        let in_flight = InFlight::default();
        for seq in 0..4 {
            in_flight.entered(seq * 10, info(seq));
        }
        assert_eq!(in_flight.left(Some(0)).map(|i| i.seq), Some(FrameSeq(0)));
        // Frame 1 was dropped inside the encoder.
        assert_eq!(in_flight.left(Some(20)).map(|i| i.seq), Some(FrameSeq(2)));
        assert_eq!(in_flight.left(Some(99)).map(|i| i.seq), None);
    }

    /// Encodes five 64×48 frames of `format`, each made by `frame(seq)`, and checks they come
    /// out in order as Annex-B H.264 with their capture times, a key frame first.
    fn encodes_five_frames(format: RawFormat, frame: impl Fn(u64) -> Vec<u8>) {
        let (tx, mut rx) = mpsc::channel(64);
        let encoder = start(64, 48, format, tx).expect("GStreamer with x264enc");
        for seq in 0..5 {
            encoder.push(info(seq), frame(seq)).expect("frame accepted");
        }
        encoder.finish();
        let mut seqs = Vec::new();
        loop {
            match rx.blocking_recv() {
                Some(Encoded::Frame(object)) => {
                    if seqs.is_empty() {
                        assert!(object.flags.keyframe, "the first frame is not a key frame");
                    }
                    assert!(object.payload.starts_with(&[0, 0, 0, 1]));
                    assert_eq!(object.capture, Micros(object.frame.0));
                    seqs.push(object.frame.0);
                }
                Some(Encoded::End) => break,
                None => panic!("the encoder stopped without flushing"),
            }
        }
        assert_eq!(seqs, [0, 1, 2, 3, 4], "{format:?}");
    }

    #[test]
    fn frames_come_out_as_h264_with_their_camera_and_a_key_frame_first() {
        encodes_five_frames(RawFormat::Rgba, |seq| vec![(seq * 40) as u8; 64 * 48 * 4]);
    }

    #[test]
    fn nv12_frames_come_out_as_h264_with_a_key_frame_first() {
        encodes_five_frames(RawFormat::Nv12, |seq| {
            // Mid grey in limited range: luma rising frame to frame, neutral chroma.
            let mut nv12 = vec![60 + (seq * 20) as u8; 64 * 48];
            nv12.resize(RawFormat::Nv12.frame_bytes(64, 48), 128);
            nv12
        });
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() {
        let (tx, _rx) = mpsc::channel(4);
        let encoder = start(64, 48, RawFormat::Rgba, tx).expect("GStreamer with x264enc");
        let err = encoder
            .push(info(7), vec![0; 10])
            .expect_err("10 bytes is not a picture");
        assert!(err.to_string().starts_with("frame 7:"), "{err}");
    }

    #[test]
    fn the_test_picture_comes_out_numbered_with_the_camera_of_its_moment() {
        let (tx, mut rx) = mpsc::channel(64);
        let settings = EncoderSettings {
            width: 160,
            height: 120,
            fps: 30,
            keyframe_interval: 10,
            ..EncoderSettings::default()
        };
        let camera: CameraAt = Arc::new(|| CameraModel {
            pose: Pose::default(),
            intrinsics: Intrinsics::from_hfov(160, 120, 1.0),
        });
        let encoder = Encoder::start(&settings, Input::TestPattern { camera }, tx)
            .expect("GStreamer with x264enc");
        let err = encoder
            .push(info(0), vec![0; 160 * 120 * 4])
            .expect_err("the test picture takes no frames");
        assert!(matches!(err, EncoderError::NotPushable { seq: 0 }), "{err}");
        let mut seen = Vec::new();
        while seen.len() < 12 {
            let Some(Encoded::Frame(object)) = rx.blocking_recv() else {
                panic!("the encoder stopped");
            };
            assert!(object.payload.starts_with(&[0, 0, 0, 1]));
            assert_eq!(object.camera.intrinsics.width, 160);
            seen.push((object.frame.0, object.flags.keyframe, object.capture));
        }
        encoder.finish();
        let seqs: Vec<u64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(seqs, (0..12).collect::<Vec<_>>());
        let keyframes: Vec<u64> = seen.iter().filter(|s| s.1).map(|s| s.0).collect();
        assert_eq!(
            keyframes,
            [0, 10],
            "a key frame every keyframe_interval frames"
        );
        assert!(
            seen.windows(2).all(|w| w[0].2 <= w[1].2),
            "capture times in order"
        );
        loop {
            match rx.blocking_recv() {
                Some(Encoded::Frame(_)) => {}
                Some(Encoded::End) => break,
                None => panic!("the encoder stopped without flushing"),
            }
        }
    }

    /// A picture that moves from frame to frame, so the encoder has real work.
    fn gradient(width: u32, height: u32, seq: u64) -> Vec<u8> {
        let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
        for y in 0..height {
            for x in 0..width {
                let shifted = (x as u64 + seq * 8) as u8;
                rgba.extend_from_slice(&[shifted, y as u8, shifted ^ y as u8, 255]);
            }
        }
        rgba
    }

    fn camera_720p() -> CameraModel {
        CameraModel {
            pose: Pose::default(),
            intrinsics: Intrinsics::from_hfov(1280, 720, 1.0),
        }
    }

    /// Exp-Golomb reader over an SPS's bits (emulation prevention bytes removed).
    struct Bits {
        data: Vec<u8>,
        at: usize,
    }

    impl Bits {
        fn bit(&mut self) -> u32 {
            let bit = (self.data[self.at / 8] >> (7 - self.at % 8)) & 1;
            self.at += 1;
            u32::from(bit)
        }

        fn bits(&mut self, n: u32) -> u32 {
            (0..n).fold(0, |acc, _| (acc << 1) | self.bit())
        }

        fn ue(&mut self) -> u32 {
            let mut zeros = 0;
            while self.bit() == 0 {
                zeros += 1;
            }
            (1 << zeros) - 1 + self.bits(zeros)
        }
    }

    /// The picture size an access unit's SPS declares, if it carries one.
    fn sps_size(access_unit: &[u8]) -> Option<(u32, u32)> {
        let start = access_unit
            .windows(4)
            .position(|w| w[..3] == [0, 0, 1] && w[3] & 0x1f == 7)?
            + 4;
        let rest = &access_unit[start..];
        let end = rest
            .windows(3)
            .position(|w| w == [0, 0, 1])
            .unwrap_or(rest.len());
        let mut data = Vec::new();
        for (i, &byte) in rest[..end].iter().enumerate() {
            if byte == 3 && i >= 2 && rest[i - 2..i] == [0, 0] {
                continue;
            }
            data.push(byte);
        }
        let mut sps = Bits { data, at: 0 };
        let profile = sps.bits(8);
        sps.bits(16);
        sps.ue();
        if [100, 110, 122, 244, 44, 83, 86, 118, 128].contains(&profile) {
            if sps.ue() == 3 {
                sps.bit();
            }
            sps.ue();
            sps.ue();
            sps.bit();
            assert_eq!(sps.bit(), 0, "scaling matrices are not parsed here");
        }
        sps.ue();
        match sps.ue() {
            0 => {
                sps.ue();
            }
            1 => {
                sps.bit();
                sps.ue();
                sps.ue();
                for _ in 0..sps.ue() {
                    sps.ue();
                }
            }
            _ => {}
        }
        sps.ue();
        sps.bit();
        let width_mbs = sps.ue() + 1;
        let height_units = sps.ue() + 1;
        let frame_mbs_only = sps.bit();
        if frame_mbs_only == 0 {
            sps.bit();
        }
        sps.bit();
        let (left, right, top, bottom) = if sps.bit() == 1 {
            (sps.ue(), sps.ue(), sps.ue(), sps.ue())
        } else {
            (0, 0, 0, 0)
        };
        let rows = 2 - frame_mbs_only;
        Some((
            width_mbs * 16 - 2 * (left + right),
            rows * height_units * 16 - 2 * rows * (top + bottom),
        ))
    }

    struct Seen {
        seq: u64,
        keyframe: bool,
        size: (u32, u32),
        camera: Intrinsics,
    }

    /// Pushes `seqs` and waits until the last of them has come out encoded.
    fn encode(
        encoder: &Encoder,
        rx: &mut mpsc::Receiver<Encoded>,
        seqs: std::ops::Range<u64>,
        seen: &mut Vec<Seen>,
    ) {
        let keep_every = u64::from(FULL_FPS / encoder.rung().fps);
        let last = (seqs.end - 1) / keep_every * keep_every;
        for seq in seqs {
            let frame = FrameInfo {
                seq: FrameSeq(seq),
                capture: Micros(seq),
                camera: camera_720p(),
            };
            encoder
                .push(frame, gradient(1280, 720, seq))
                .expect("frame accepted");
        }
        let mut size = seen.last().map(|s| s.size);
        while let Some(Encoded::Frame(object)) = rx.blocking_recv() {
            size = sps_size(&object.payload).or(size);
            seen.push(Seen {
                seq: object.frame.0,
                keyframe: object.flags.keyframe,
                size: size.expect("the stream starts with an SPS"),
                camera: object.camera.intrinsics,
            });
            if object.frame.0 == last {
                return;
            }
        }
        panic!("the encoder stopped");
    }

    #[test]
    fn the_ladder_rescales_the_stream_from_a_key_frame_with_the_camera_to_match() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut encoder = start(1280, 720, RawFormat::Rgba, tx).expect("GStreamer with x264enc");
        let mut seen = Vec::new();
        encode(&encoder, &mut rx, 0..10, &mut seen);
        let down = encoder.follow_hint(500_000).expect("a smaller rung");
        assert_eq!((down.width, down.height, down.fps), (640, 360, 30));
        encode(&encoder, &mut rx, 10..20, &mut seen);
        let up = encoder.follow_hint(5_000_000).expect("the top rung again");
        assert_eq!((up.width, up.height), (1280, 720));
        encode(&encoder, &mut rx, 20..30, &mut seen);
        let cut = encoder.follow_hint(100_000).expect("the bottom rung");
        assert_eq!((cut.width, cut.height, cut.fps), (640, 360, 15));
        encode(&encoder, &mut rx, 30..40, &mut seen);
        encoder.finish();

        let seqs: Vec<u64> = seen.iter().map(|s| s.seq).collect();
        let expected: Vec<u64> = (0..30).chain((30..40).step_by(2)).collect();
        assert_eq!(seqs, expected, "half rate keeps every other frame");
        let small = camera_720p().intrinsics.scaled_to(640, 360);
        for s in &seen {
            let size = match s.seq {
                10..20 | 30.. => (640, 360),
                _ => (1280, 720),
            };
            assert_eq!(s.size, size, "frame {}", s.seq);
            assert_eq!(
                s.keyframe,
                [0, 10, 20, 30].contains(&s.seq),
                "frame {}",
                s.seq
            );
            let camera = if size == (640, 360) {
                small
            } else {
                camera_720p().intrinsics
            };
            assert_eq!(s.camera, camera, "frame {}", s.seq);
        }
    }
}
