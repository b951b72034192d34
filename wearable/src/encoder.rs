//! The wearable's H.264 stream: the shared encoder (`farsight_media`) started the way the
//! glasses need it (a hardware encoder where the machine has one, frames at the render's
//! rate), and the encoder's answers to what the relay asks of the stream.

use farsight_media::{
    BITRATE_KBPS, Encoded, Encoder, EncoderError, EncoderSettings, FULL_FPS, Input,
    KEYFRAME_INTERVAL, RawFormat,
};
use tokio::sync::mpsc;

use crate::link::LinkEvent;

/// Starts encoding `width` × `height` frames in `format`, pushed at the render's rate;
/// encoded frames go to `out`.
pub fn start(
    width: u32,
    height: u32,
    format: RawFormat,
    out: mpsc::Sender<Encoded>,
) -> Result<Encoder, EncoderError> {
    let settings = EncoderSettings {
        width,
        height,
        fps: FULL_FPS,
        bitrate_kbps: BITRATE_KBPS,
        keyframe_interval: KEYFRAME_INTERVAL,
        hardware: true,
    };
    Encoder::start(&settings, Input::Frames(format), out)
}

/// Answers what the relay asks of the stream: a key frame, or a new bit rate.
pub fn answer(encoder: &mut Encoder, event: &LinkEvent) {
    match event {
        LinkEvent::KeyframeRequested => {
            tracing::debug!("key frame requested");
            encoder.force_keyframe();
        }
        LinkEvent::Bitrate(bits_per_second) => {
            encoder.follow_hint(*bits_per_second);
            let rung = encoder.rung();
            tracing::info!(
                bits_per_second,
                width = rung.width,
                height = rung.height,
                fps = rung.fps,
                "encoding on the relay's hint"
            );
        }
        _ => {}
    }
}
