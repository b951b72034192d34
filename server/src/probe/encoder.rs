//! A GStreamer H.264 encoder fed by `videotestsrc`: what a wearable's camera path produces,
//! without a camera. x264 is tuned for latency (no B-frames, no look-ahead).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use farsight_protocol::Micros;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

#[derive(Clone, Debug)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Frames per group of pictures.
    pub keyframe_interval: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2000,
            keyframe_interval: 30,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EncodedFrame {
    /// One H.264 access unit, Annex B.
    pub data: Bytes,
    pub keyframe: bool,
    /// Wall-clock time the raw frame was produced, before encoding.
    pub capture: Micros,
}

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("GStreamer: {0}")]
    Glib(#[from] gstreamer::glib::Error),
    #[error("GStreamer: {0}")]
    Bool(#[from] gstreamer::glib::BoolError),
    #[error("GStreamer pipeline would not start: {0}")]
    State(#[from] gst::StateChangeError),
    #[error("GStreamer element missing: {0} (install gstreamer1.0-plugins-ugly for x264enc)")]
    Missing(&'static str),
}

/// Wall-clock times at which raw frames entered the encoder, matched to encoded frames by
/// presentation timestamp, so `capture` counts the encoder's own delay.
#[derive(Clone, Debug, Default)]
struct CaptureStamps(Arc<Mutex<VecDeque<RawFrame>>>);

/// A raw frame's presentation timestamp and the wall-clock time it reached the encoder.
type RawFrame = (Option<u64>, Micros);

impl CaptureStamps {
    const MAX_PENDING: usize = 256;

    fn raw_frame(&self, pts: Option<u64>) {
        let mut q = self.0.lock().expect("stamp lock poisoned");
        if q.len() == Self::MAX_PENDING {
            q.pop_front();
        }
        q.push_back((pts, Micros::now()));
    }

    fn encoded_frame(&self, pts: Option<u64>) -> Micros {
        let mut q = self.0.lock().expect("stamp lock poisoned");
        // Frames come out in order; any the encoder skipped are discarded on the way.
        while let Some((raw_pts, at)) = q.pop_front() {
            if raw_pts == pts || q.is_empty() {
                return at;
            }
        }
        Micros::now()
    }
}

#[derive(Debug)]
pub struct Encoder {
    pipeline: gst::Pipeline,
    encoder: gst::Element,
    sink: gst_app::AppSink,
}

impl Encoder {
    /// Starts the pipeline; frames arrive on the returned channel until [`Encoder::stop`].
    pub fn start(
        settings: &EncoderSettings,
    ) -> Result<(Self, mpsc::Receiver<EncodedFrame>), EncoderError> {
        gst::init()?;
        let s = settings;
        let description = format!(
            "videotestsrc is-live=true pattern=ball ! \
             video/x-raw,width={},height={},framerate={}/1 ! videoconvert ! \
             x264enc name=enc tune=zerolatency speed-preset=ultrafast bitrate={} \
             key-int-max={} byte-stream=true ! \
             video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! \
             appsink name=sink sync=false max-buffers=8",
            s.width, s.height, s.fps, s.bitrate_kbps, s.keyframe_interval
        );
        let pipeline = gst::parse::launch(&description)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| EncoderError::Missing("pipeline"))?;
        let encoder = pipeline
            .by_name("enc")
            .ok_or(EncoderError::Missing("x264enc"))?;
        let sink = pipeline
            .by_name("sink")
            .ok_or(EncoderError::Missing("appsink"))?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| EncoderError::Missing("appsink"))?;

        let stamps = CaptureStamps::default();
        let sink_pad = encoder
            .static_pad("sink")
            .ok_or(EncoderError::Missing("x264enc sink pad"))?;
        let record = stamps.clone();
        sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                record.raw_frame(buffer.pts().map(|t| t.nseconds()));
            }
            gst::PadProbeReturn::Ok
        });

        let (tx, rx) = mpsc::channel(64);
        pipeline.set_state(gst::State::Playing)?;
        let pull = sink.clone();
        std::thread::Builder::new()
            .name("encoder".into())
            .spawn(move || {
                while let Ok(sample) = pull.pull_sample() {
                    let Some(buffer) = sample.buffer() else {
                        continue;
                    };
                    let Ok(map) = buffer.map_readable() else {
                        continue;
                    };
                    let frame = EncodedFrame {
                        data: Bytes::copy_from_slice(&map),
                        keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        capture: stamps.encoded_frame(buffer.pts().map(|t| t.nseconds())),
                    };
                    if tx.blocking_send(frame).is_err() {
                        break;
                    }
                }
            })
            .expect("spawning a thread");
        Ok((
            Self {
                pipeline,
                encoder,
                sink,
            },
            rx,
        ))
    }

    /// Asks x264 for a key frame now (answers a `KeyframeRequest`).
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
        self.encoder.set_property("bitrate", kbps);
    }

    pub fn bitrate_kbps(&self) -> u32 {
        self.encoder.property::<u32>("bitrate")
    }

    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        self.stop();
    }
}
