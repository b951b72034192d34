//! `probe publish`: stream encoded test video with a moving pose, like a wearable, answer
//! `KeyframeRequest` and `BitrateHint`, and anchor agents' marks (see [`super::anchor`]).

use std::time::{Duration, Instant};

use farsight_client::{ClientError, Connection};
use farsight_protocol::{
    CameraModel, ControlMessage, FrameSeq, Intrinsics, Object, ObjectFlags, Pose, PoseDatagram,
};
use nalgebra::{Point3, Vector3};
use serde::Serialize;

use super::anchor::FrameCameras;
use super::encoder::{Encoder, EncoderSettings};

#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub encoder: EncoderSettings,
    /// Stop after this long; `None` runs until the connection ends.
    pub duration: Option<Duration>,
    /// What agents do to the picture, as it arrives (`Annotate`, `Erase`, `Clear`, `Freeze`,
    /// `Unfreeze`), for callers that show or check it.
    pub marks: Option<tokio::sync::mpsc::UnboundedSender<ControlMessage>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PublishReport {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub keyframe_requests: u64,
    pub bitrate_hints: Vec<u64>,
    pub marks_received: u64,
    pub marks_anchored: u64,
}

/// Horizontal field of view of the synthetic camera.
const HFOV: f64 = 60.0 * std::f64::consts::PI / 180.0;

/// A head 1 m from the origin swaying left and right (±0.3 m, 4 s period) and turning
/// against the sway (its gaze crosses ±0.2 m either side of the origin), as a person looking
/// over a workbench does: a smooth, known path under which fixed points move across the
/// picture.
pub fn synthetic_pose(seconds: f64) -> Pose {
    let phase = seconds * std::f64::consts::TAU / 4.0;
    let eye = Point3::new(0.3 * phase.sin(), -0.1, -1.0 + 0.05 * phase.cos());
    let gaze = Point3::new(-0.2 * phase.sin(), 0.0, 0.0);
    Pose::look_at(eye, gaze, Vector3::new(0.0, -1.0, 0.0))
}

pub async fn publish(
    conn: &mut Connection,
    options: &PublishOptions,
) -> Result<PublishReport, anyhow::Error> {
    let settings = &options.encoder;
    let (encoder, mut frames) = Encoder::start(settings)?;
    let intrinsics = Intrinsics::from_hfov(settings.width, settings.height, HFOV);
    let mut publisher = conn.publisher();
    let mut report = PublishReport::default();
    // Ten seconds of frames: marks refer to what an agent saw a moment ago.
    let mut cameras = FrameCameras::new(settings.fps.max(1) as usize * 10);
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let stop = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            frame = frames.recv() => {
                let Some(frame) = frame else { break };
                let pose = synthetic_pose(started.elapsed().as_secs_f64());
                let object = Object {
                    frame: FrameSeq(report.frames),
                    capture: frame.capture,
                    flags: ObjectFlags { keyframe: frame.keyframe },
                    camera: CameraModel { pose, intrinsics },
                    payload: frame.data,
                };
                cameras.record(object.frame, object.camera);
                publisher.send(&object).await?;
                publisher.send_pose(&PoseDatagram { session: conn.session, at: frame.capture, pose })?;
                report.frames += 1;
                report.keyframes += u64::from(frame.keyframe);
                report.bytes += object.payload.len() as u64;
            }
            msg = conn.recv() => match msg {
                Some(Ok(ControlMessage::KeyframeRequest { .. })) => {
                    report.keyframe_requests += 1;
                    encoder.force_keyframe();
                }
                Some(Ok(ControlMessage::BitrateHint { bits_per_second, .. })) => {
                    report.bitrate_hints.push(bits_per_second);
                    encoder.set_bitrate(bits_per_second);
                    tracing::info!(bits_per_second, "bit rate lowered on the relay's hint");
                }
                Some(Ok(msg @ (ControlMessage::Annotate(_) | ControlMessage::Erase { .. }
                    | ControlMessage::Clear { .. } | ControlMessage::Freeze { .. }
                    | ControlMessage::Unfreeze { .. }))) => {
                    if let ControlMessage::Annotate(mark) = &msg {
                        report.marks_received += 1;
                        match cameras.resolve(mark, &Point3::origin()) {
                            Some(anchor) => {
                                conn.send(&anchor).await?;
                                report.marks_anchored += 1;
                            }
                            None => tracing::warn!(frame = mark.frame.0, "mark on a frame no longer known"),
                        }
                    }
                    if let Some(tap) = &options.marks {
                        let _ = tap.send(msg);
                    }
                }
                Some(Ok(other)) => tracing::info!(message = ?other, "control"),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Protocol("connection closed".into()).into()),
            }
        }
    }
    publisher.finish();
    encoder.stop();
    Ok(report)
}
