//! Receiving a wearable's groups: decode and validate each object, append it to the live
//! group, and hand the group to the session's watchers from its key frame on.

use std::sync::Arc;
use std::time::Instant;

use farsight_protocol::{
    ControlMessage, DecodeError, ErrorCode, MediaDecoder, MediaEvent, SessionId, StreamHeader,
};

use super::group::{Group, GroupObject};
use super::session::SessionHub;
use crate::metrics::Metrics;

const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("malformed media: {0}")]
    Malformed(#[from] DecodeError),
    #[error("group for session {got} on a connection publishing session {expected}")]
    ForeignSession { got: SessionId, expected: SessionId },
    #[error("group {0} does not start with a key frame")]
    NoKeyframe(u64),
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadError),
}

impl IngestError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            IngestError::Malformed(DecodeError::TooLong { .. }) => Some(ErrorCode::TooLarge),
            IngestError::Malformed(_) => Some(ErrorCode::Malformed),
            IngestError::ForeignSession { .. } => Some(ErrorCode::NotJoined),
            IngestError::NoKeyframe(_) => Some(ErrorCode::Malformed),
            IngestError::Read(_) => None,
        }
    }
}

/// Reads one group stream to its end. Returns the header once the stream is done.
pub async fn ingest_group(
    hub: &Arc<SessionHub>,
    recv: &mut quinn::RecvStream,
    metrics: &Metrics,
) -> Result<Option<StreamHeader>, IngestError> {
    let mut decoder = MediaDecoder::new();
    let mut header: Option<StreamHeader> = None;
    let mut group: Option<Arc<Group>> = None;
    let mut buf = vec![0u8; READ_CHUNK];
    let result = loop {
        let n = match recv.read(&mut buf).await {
            Ok(Some(n)) => n,
            Ok(None) => break Ok(header),
            Err(e) => break Err(e.into()),
        };
        decoder.push(&buf[..n]);
        let step = (|| {
            while let Some(event) = decoder.poll()? {
                match event {
                    MediaEvent::Header(h) if h.session != hub.id => {
                        return Err(IngestError::ForeignSession {
                            got: h.session,
                            expected: hub.id,
                        });
                    }
                    MediaEvent::Header(h) => header = Some(h),
                    MediaEvent::Object(object) => {
                        let h = header.expect("the decoder yields the header first");
                        metrics.objects_received.inc();
                        let bytes = object.to_bytes();
                        metrics.bytes_received.inc_by(bytes.len() as u64);
                        let item = GroupObject {
                            arrived: Instant::now(),
                            bytes,
                        };
                        match &group {
                            Some(g) => g.push(item),
                            None if object.flags.keyframe => {
                                let g = Arc::new(Group::new(h, item));
                                hub.publish_group(g.clone());
                                group = Some(g);
                            }
                            None => return Err(IngestError::NoKeyframe(h.group.0)),
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = step {
            break Err(e);
        }
    };
    if let Some(g) = &group {
        g.close();
    }
    if let Err(IngestError::NoKeyframe(_)) = &result {
        hub.to_publisher(ControlMessage::KeyframeRequest { session: hub.id });
    }
    result
}
