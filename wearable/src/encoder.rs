//! H.264 for the relay: rendered RGBA frames go into a GStreamer pipeline (`appsrc !
//! videoconvert ! x264enc`, tuned for latency: no B-frames, no look-ahead) and each encoded
//! access unit comes out as a protocol `Object` carrying its frame's sequence number, capture
//! time and camera.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use farsight_protocol::{CameraModel, FrameSeq, Micros, Object, ObjectFlags};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::headless::FRAME_STEP;

/// Frames per group of pictures: a watcher joining late waits at most a second for a key
/// frame of its own, though the relay's cached group shows it a picture at once.
pub const KEYFRAME_INTERVAL: u32 = 30;

/// Starting bit rate, kbit/s; `BitrateHint` lowers it.
pub const BITRATE_KBPS: u32 = 2000;

/// Raw frames the encoder may hold before `push` blocks: the renderer waits for a slow
/// encoder rather than piling up pictures.
const QUEUED_FRAMES: u64 = 4;

/// What the encoder hands on: encoded frames in order, then `End` once a finished stream has
/// been flushed. A channel that closes without `End` means the encoder failed.
#[derive(Debug)]
pub enum Encoded {
    Frame(Object),
    End,
}

/// A rendered frame, as the camera saw it.
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    pub seq: FrameSeq,
    /// Wall-clock time the frame was rendered.
    pub capture: Micros,
    pub camera: CameraModel,
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("GStreamer: {0}")]
    Glib(#[from] gst::glib::Error),
    #[error("GStreamer element missing: {0} (install gstreamer1.0-plugins-ugly for x264enc)")]
    Missing(&'static str),
    #[error("GStreamer pipeline would not start: {0}")]
    State(#[from] gst::StateChangeError),
    #[error("frame {seq}: {got} bytes of RGBA for a {width}×{height} encoder")]
    WrongSize {
        seq: u64,
        got: usize,
        width: u32,
        height: u32,
    },
    #[error("frame {seq}: the encoder refused it ({flow:?})")]
    Refused { seq: u64, flow: gst::FlowError },
}

/// Frames inside the encoder, matched to what comes out by presentation timestamp.
#[derive(Clone, Debug, Default)]
struct InFlight(Arc<Mutex<VecDeque<(u64, FrameInfo)>>>);

impl InFlight {
    fn entered(&self, pts: u64, info: FrameInfo) {
        self.0
            .lock()
            .expect("in-flight lock poisoned")
            .push_back((pts, info));
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

#[derive(Debug)]
pub struct Encoder {
    pipeline: gst::Pipeline,
    source: gst_app::AppSrc,
    x264: gst::Element,
    sink: gst_app::AppSink,
    in_flight: InFlight,
    size: (u32, u32),
}

impl Encoder {
    /// Starts the pipeline for `width` × `height` RGBA frames; encoded frames go to `out`.
    pub fn start(
        width: u32,
        height: u32,
        out: mpsc::Sender<Encoded>,
    ) -> Result<Self, EncoderError> {
        gst::init()?;
        let description = format!(
            "appsrc name=src ! videoconvert ! \
             x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={BITRATE_KBPS} \
             key-int-max={KEYFRAME_INTERVAL} ! \
             video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! \
             appsink name=sink sync=false"
        );
        let pipeline = gst::parse::launch(&description)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| EncoderError::Missing("pipeline"))?;
        let source = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or(EncoderError::Missing("appsrc"))?;
        let x264 = pipeline
            .by_name("enc")
            .ok_or(EncoderError::Missing("x264enc"))?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or(EncoderError::Missing("appsink"))?;

        let fps = gst::Fraction::new(
            1_000_000_000,
            i32::try_from(FRAME_STEP.as_nanos()).expect("a frame step under 2 s"),
        );
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGBA")
            .field("width", i32::try_from(width).unwrap_or(i32::MAX))
            .field("height", i32::try_from(height).unwrap_or(i32::MAX))
            .field("framerate", fps)
            .build();
        source.set_caps(Some(&caps));
        source.set_format(gst::Format::Time);
        source.set_is_live(true);
        source.set_block(true);
        source.set_max_bytes(QUEUED_FRAMES * u64::from(width) * u64::from(height) * 4);

        let in_flight = InFlight::default();
        pipeline.set_state(gst::State::Playing)?;
        let pull = sink.clone();
        let frames = in_flight.clone();
        std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || drain(&pull, &frames, &out))
            .expect("spawning a thread");
        Ok(Self {
            pipeline,
            source,
            x264,
            sink,
            in_flight,
            size: (width, height),
        })
    }

    /// Encodes one frame: `rgba` is `width` × `height` pixels, 4 bytes each, rows top to
    /// bottom. Blocks while the encoder is a few frames behind.
    pub fn push(&self, info: FrameInfo, rgba: Vec<u8>) -> Result<(), EncoderError> {
        let (width, height) = self.size;
        if rgba.len() != width as usize * height as usize * 4 {
            return Err(EncoderError::WrongSize {
                seq: info.seq.0,
                got: rgba.len(),
                width,
                height,
            });
        }
        let pts = FRAME_STEP.as_nanos() as u64 * info.seq.0;
        let mut buffer = gst::Buffer::from_mut_slice(rgba);
        {
            let buffer = buffer.get_mut().expect("a buffer just made has one owner");
            buffer.set_pts(gst::ClockTime::from_nseconds(pts));
            buffer.set_duration(gst::ClockTime::from_nseconds(FRAME_STEP.as_nanos() as u64));
        }
        self.in_flight.entered(pts, info);
        self.source
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|flow| EncoderError::Refused {
                seq: info.seq.0,
                flow,
            })
    }

    /// No more frames: the encoder flushes what it holds and then says `End`.
    pub fn finish(&self) {
        let _ = self.source.end_of_stream();
    }

    /// Asks x264 for a key frame now, with its SPS and PPS (answers a `KeyframeRequest`).
    pub fn force_keyframe(&self) {
        let event = gst::event::CustomUpstream::new(
            gst::Structure::builder("GstForceKeyUnit")
                .field("all-headers", true)
                .build(),
        );
        self.sink.send_event(event);
    }

    /// Changes the target bit rate while running (answers a `BitrateHint`).
    pub fn set_bitrate(&self, bits_per_second: u64) {
        let kbps = (bits_per_second / 1000).clamp(100, 50_000) as u32;
        self.x264.set_property("bitrate", kbps);
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The encoder thread: pulls access units until end of stream, pairs each with its frame.
fn drain(sink: &gst_app::AppSink, in_flight: &InFlight, out: &mpsc::Sender<Encoded>) {
    loop {
        let sample = match sink.pull_sample() {
            Ok(sample) => sample,
            Err(_) if sink.is_eos() => {
                let _ = out.blocking_send(Encoded::End);
                return;
            }
            Err(_) => {
                tracing::error!("the encoder stopped before the end of the stream");
                return;
            }
        };
        let Some(buffer) = sample.buffer() else {
            continue;
        };
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
            tracing::warn!(?pts, "an encoded frame that matches no rendered frame");
            continue;
        };
        let Ok(map) = buffer.map_readable() else {
            continue;
        };
        let object = Object {
            frame: info.seq,
            capture: info.capture,
            flags: ObjectFlags {
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            },
            camera: info.camera,
            payload: Bytes::copy_from_slice(&map),
        };
        if out.blocking_send(Encoded::Frame(object)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use farsight_protocol::{Intrinsics, Pose};

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

    #[test]
    fn frames_come_out_as_h264_with_their_camera_and_a_key_frame_first() {
        let (tx, mut rx) = mpsc::channel(64);
        let encoder = Encoder::start(64, 48, tx).expect("GStreamer with x264enc");
        for seq in 0..5 {
            encoder
                .push(info(seq), vec![(seq * 40) as u8; 64 * 48 * 4])
                .expect("frame accepted");
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
        assert_eq!(seqs, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_frame_of_the_wrong_size_is_refused() {
        let (tx, _rx) = mpsc::channel(4);
        let encoder = Encoder::start(64, 48, tx).expect("GStreamer with x264enc");
        let err = encoder
            .push(info(7), vec![0; 10])
            .expect_err("10 bytes is not a picture");
        assert!(err.to_string().starts_with("frame 7:"), "{err}");
    }
}
