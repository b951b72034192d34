//! `farsight probe`: the reference client on the command line. `publish` plays a wearable
//! (GStreamer test video, H.264, a moving synthetic pose); `watch` plays an agent and
//! reports what arrives.

mod anchor;
mod publish;
mod watch;

pub use anchor::anchor_on_plane;
pub use farsight_media::EncoderSettings;
pub use publish::{PublishOptions, PublishReport, publish, synthetic_pose};
pub use watch::{WatchOptions, WatchReport, watch};

/// Why a probe stopped before its time.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the video encoder: {0}")]
    Encoder(#[from] farsight_media::EncoderError),
    #[error(transparent)]
    Relay(#[from] farsight_client::ClientError),
    #[error("writing a frame line: {0}")]
    Output(#[from] serde_json::Error),
}
