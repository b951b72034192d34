//! `probe publish`: stream encoded test video with a moving pose, like a wearable, answer
//! `KeyframeRequest` and `BitrateHint`, and anchor agents' marks (see [`super::anchor`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use farsight_client::{
    Backoff, ClientError, ConnectOptions, Connection, Publisher, connect_with_backoff,
};
use farsight_media::{CameraAt, Encoded, Encoder, EncoderSettings, FrameRing, Input};
use farsight_protocol::{
    Annotate, CameraModel, ControlMessage, Intrinsics, Object, Pose, PoseDatagram,
};
use nalgebra::{Point3, Vector3};
use serde::Serialize;
use tokio::sync::mpsc;

use super::ProbeError;
use super::anchor::anchor_on_plane;

#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub encoder: EncoderSettings,
    /// Stop after this long; `None` runs until the connection ends.
    pub duration: Option<Duration>,
    /// What agents do to the picture, as it arrives (`Annotate`, `Erase`, `Clear`, `Freeze`,
    /// `Unfreeze`), for callers that show or check it.
    pub marks: Option<tokio::sync::mpsc::UnboundedSender<ControlMessage>>,
    /// How to reach the relay again when the link drops (the session is resumed); `None`
    /// ends publishing with the error instead.
    pub reconnect: Option<ConnectOptions>,
}

/// How long to keep trying to reach a relay that went away before giving up.
const RECONNECT_GIVE_UP: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Default, Serialize)]
pub struct PublishReport {
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub keyframe_requests: u64,
    pub bitrate_hints: Vec<u64>,
    pub marks_received: u64,
    pub marks_anchored: u64,
    /// Times the link to the relay was lost and the same session resumed.
    pub reconnects: u64,
    /// Someone in the session ended it for everyone, which stopped the publishing.
    pub ended: bool,
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
) -> Result<PublishReport, ProbeError> {
    let settings = &options.encoder;
    let (frames_tx, mut frames) = mpsc::channel(64);
    let encoder = Encoder::start(
        settings,
        Input::TestPattern {
            camera: swaying_camera(settings),
        },
        frames_tx,
    )?;
    let mut stream = Stream {
        publisher: conn.publisher(),
        // Ten seconds of frames: marks refer to what an agent saw a moment ago.
        cameras: FrameRing::new(settings.fps.max(1) as usize * 10),
        report: PublishReport::default(),
    };
    let deadline = options.duration.map(|d| Instant::now() + d);
    let stop = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    let mut backoff = Backoff::default();
    loop {
        // Ok(true): done; Err: the link to the relay is gone.
        let step: Result<bool, ClientError> = tokio::select! {
            () = &mut stop => Ok(true),
            frame = frames.recv() => match frame {
                None | Some(Encoded::End) => Ok(true),
                Some(Encoded::Frame(object)) => stream.send(conn, &object).await.map(|()| false),
            },
            msg = conn.recv() => match msg {
                Some(Ok(ControlMessage::End { .. })) => {
                    tracing::info!(session = %conn.session, "the session was ended for everyone");
                    stream.report.ended = true;
                    Ok(true)
                }
                Some(Ok(msg)) => stream.answer(conn, &encoder, options, msg).await.map(|()| false),
                Some(Err(e)) => Err(e),
                None => Err(ClientError::Protocol("connection closed".into())),
            },
        };
        match step {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                let Some(reconnect) = &options.reconnect else {
                    return Err(e.into());
                };
                resume(conn, reconnect, &mut backoff, &e).await?;
                // Groups keep counting up and the next one starts on a key frame, so watchers
                // see a picture at once.
                stream.publisher = conn.publisher().starting_at(stream.publisher.next_group());
                encoder.force_keyframe();
                stream.report.reconnects += 1;
            }
        }
    }
    stream.publisher.finish();
    encoder.stop();
    Ok(stream.report)
}

/// The camera of the synthetic head at each moment from now, for the encoder to stamp each
/// frame with as it is encoded.
fn swaying_camera(settings: &EncoderSettings) -> CameraAt {
    let intrinsics = Intrinsics::from_hfov(settings.width, settings.height, HFOV);
    let started = Instant::now();
    Arc::new(move || CameraModel {
        pose: synthetic_pose(started.elapsed().as_secs_f64()),
        intrinsics,
    })
}

/// What is being published on the current connection, and what has happened so far.
struct Stream {
    publisher: Publisher,
    cameras: FrameRing,
    report: PublishReport,
}

impl Stream {
    /// Sends one encoded frame, and its head pose as a datagram.
    async fn send(&mut self, conn: &Connection, object: &Object) -> Result<(), ClientError> {
        self.cameras.record(object.frame, object.camera);
        self.report.frames += 1;
        self.report.keyframes += u64::from(object.flags.keyframe);
        self.report.bytes += object.payload.len() as u64;
        let datagram = PoseDatagram {
            session: conn.session,
            at: object.capture,
            pose: object.camera.pose,
        };
        self.publisher.send(object).await?;
        self.publisher.send_pose(&datagram)
    }

    /// Answers a control message from the relay: a key frame, a bit rate, an agent's mark.
    async fn answer(
        &mut self,
        conn: &Connection,
        encoder: &Encoder,
        options: &PublishOptions,
        msg: ControlMessage,
    ) -> Result<(), ClientError> {
        match msg {
            ControlMessage::KeyframeRequest { .. } => {
                self.report.keyframe_requests += 1;
                encoder.force_keyframe();
            }
            ControlMessage::BitrateHint {
                bits_per_second, ..
            } => {
                self.report.bitrate_hints.push(bits_per_second);
                encoder.set_bitrate(bits_per_second);
                tracing::info!(bits_per_second, "bit rate lowered on the relay's hint");
            }
            msg @ (ControlMessage::Annotate(_)
            | ControlMessage::Erase { .. }
            | ControlMessage::Clear { .. }
            | ControlMessage::Freeze { .. }
            | ControlMessage::Unfreeze { .. }) => {
                let mut sent = Ok(());
                if let ControlMessage::Annotate(mark) = &msg {
                    sent = self.anchor(conn, mark).await;
                }
                if let Some(tap) = &options.marks {
                    let _ = tap.send(msg);
                }
                return sent;
            }
            other => tracing::info!(message = ?other, "control"),
        }
        Ok(())
    }

    /// Anchors an agent's mark on the plane the head looks at and sends the world points back.
    async fn anchor(&mut self, conn: &Connection, mark: &Annotate) -> Result<(), ClientError> {
        self.report.marks_received += 1;
        match anchor_on_plane(&self.cameras, mark, &Point3::origin()) {
            Some(anchor) => {
                self.report.marks_anchored += 1;
                conn.send(&anchor).await
            }
            None => {
                tracing::warn!(frame = mark.frame.0, "mark on a frame no longer known");
                Ok(())
            }
        }
    }
}

/// Reconnects after `lost`, resuming the same session.
async fn resume(
    conn: &mut Connection,
    reconnect: &ConnectOptions,
    backoff: &mut Backoff,
    lost: &ClientError,
) -> Result<(), ClientError> {
    tracing::warn!(error = %lost, session = %conn.session, "lost the relay; reconnecting");
    let resume = ConnectOptions {
        resume: conn.session,
        ..reconnect.clone()
    };
    *conn = connect_with_backoff(&resume, backoff, RECONNECT_GIVE_UP).await?;
    tracing::info!(session = %conn.session, "reconnected");
    Ok(())
}
