//! `farsight-media`: the media work a wearable and the probe share, without Bevy. GStreamer
//! H.264 encoding that pairs each encoded frame with the frame that went in (and follows the
//! relay's resolution ladder), and the ring of recent frames' cameras that agents' marks are
//! anchored against.

pub mod encoder;
pub mod h264;
pub mod ladder;
pub mod ring;

pub use encoder::{
    BITRATE_KBPS, CameraAt, ENCODER_VAR, Encoded, Encoder, EncoderError, EncoderSettings,
    FrameInfo, Input, KEYFRAME_INTERVAL, RawFormat,
};
pub use ladder::{FULL_FPS, Ladder, Rung};
pub use ring::{Anchor, FrameRing};
