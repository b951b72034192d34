//! `probe watch`: join a session as an agent and report every frame and a summary:
//! frames, groups complete and dropped, bit rate and delay from capture to arrival.

use std::time::{Duration, Instant};

use super::ProbeError;

use farsight_client::{Connection, GroupEnd, WatchEvent};
use farsight_protocol::{GroupSeq, Micros, Object, SessionId};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub session: SessionId,
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
    /// Print one JSON object per frame instead of a text line.
    pub json: bool,
    pub quiet: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WatchReport {
    pub frames: u64,
    pub keyframes: u64,
    pub groups_complete: u64,
    pub groups_dropped: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub bits_per_second: f64,
    /// Capture to arrival, milliseconds, over all frames.
    pub delay_ms_p50: f64,
    pub delay_ms_p99: f64,
    pub first_frame_keyframe: bool,
}

/// One frame as `--json` prints it (README.md shows a line).
#[derive(Debug, Serialize)]
struct FrameLine {
    group: u64,
    frame: u64,
    keyframe: bool,
    bytes: usize,
    /// Capture to arrival, milliseconds.
    delay_ms: f64,
    /// The camera's pose, world from camera: its position in metres, and its rotation as a
    /// unit quaternion in the wire's order x, y, z, w.
    position: [f64; 3],
    rotation: [f64; 4],
}

impl FrameLine {
    fn new(group: GroupSeq, object: &Object, delay_ms: f64) -> Self {
        let t = object.camera.pose.translation;
        let q = object.camera.pose.rotation;
        Self {
            group: group.0,
            frame: object.frame.0,
            keyframe: object.flags.keyframe,
            bytes: object.payload.len(),
            delay_ms,
            position: [t.x, t.y, t.z],
            rotation: [q.i, q.j, q.k, q.w],
        }
    }
}

/// Nearest-rank percentile of unsorted samples.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

pub async fn watch(
    conn: &mut Connection,
    options: &WatchOptions,
) -> Result<WatchReport, ProbeError> {
    conn.join(options.session).await?;
    let mut watcher = conn.watcher();
    let mut report = WatchReport::default();
    let mut delays = Vec::new();
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    loop {
        if options.frames.is_some_and(|n| report.frames >= n) {
            break;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let event = match left {
            Some(left) => match tokio::time::timeout(left, watcher.next()).await {
                Ok(e) => e,
                Err(_) => break,
            },
            None => watcher.next().await,
        };
        match event {
            Some(WatchEvent::Object(r)) => {
                let delay_ms = (Micros::now().0 as f64 - r.object.capture.0 as f64) / 1000.0;
                if report.frames == 0 {
                    report.first_frame_keyframe = r.object.flags.keyframe;
                }
                report.frames += 1;
                report.keyframes += u64::from(r.object.flags.keyframe);
                report.bytes += r.object.payload.len() as u64;
                delays.push(delay_ms);
                let line = FrameLine::new(r.header.group, &r.object, delay_ms);
                if options.json {
                    println!("{}", serde_json::to_string(&line)?);
                } else if !options.quiet {
                    println!(
                        "group {:>5} frame {:>6} {} {:>7} B  delay {:>7.2} ms  pose ({:+.3}, {:+.3}, {:+.3})",
                        line.group,
                        line.frame,
                        if line.keyframe { "K" } else { " " },
                        line.bytes,
                        line.delay_ms,
                        line.position[0],
                        line.position[1],
                        line.position[2]
                    );
                }
            }
            Some(WatchEvent::End(GroupEnd::Complete { .. })) => report.groups_complete += 1,
            Some(WatchEvent::End(GroupEnd::Dropped { .. })) => report.groups_dropped += 1,
            Some(WatchEvent::End(GroupEnd::Failed { reason })) => {
                tracing::warn!(%reason, "group failed");
            }
            None => break,
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.bits_per_second = report.bytes as f64 * 8.0 / report.seconds.max(1e-9);
    report.delay_ms_p50 = percentile(&mut delays, 50.0);
    report.delay_ms_p99 = percentile(&mut delays, 99.0);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use farsight_protocol::{CameraModel, FrameSeq, Intrinsics, ObjectFlags, Pose};
    use nalgebra::{Point3, Vector3};

    #[test]
    fn a_json_frame_line_carries_the_pose_position_and_rotation() {
        let pose = Pose::look_at(
            Point3::new(0.3, -0.1, -1.0),
            Point3::origin(),
            Vector3::new(0.0, -1.0, 0.0),
        );
        let object = Object {
            frame: FrameSeq(372),
            capture: Micros(0),
            flags: ObjectFlags { keyframe: true },
            camera: CameraModel {
                pose,
                intrinsics: Intrinsics::from_hfov(640, 360, 1.0),
            },
            payload: Bytes::from_static(&[0, 0, 0, 1, 0x65]),
        };
        let line = FrameLine::new(GroupSeq(12), &object, 4.5);
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&line).expect("serialises")).expect("JSON");
        assert_eq!(json["group"], 12);
        assert_eq!(json["frame"], 372);
        assert_eq!(json["keyframe"], true);
        assert_eq!(json["bytes"], 5);
        assert_eq!(json["delay_ms"], 4.5);
        let numbers = |key: &str| -> Vec<f64> {
            json[key]
                .as_array()
                .expect("an array")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect()
        };
        // serde_json reads floats back to within an ulp or so, not always bit for bit.
        let close = |got: &[f64], want: &[f64]| {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-12)
        };
        let position = numbers("position");
        assert!(close(&position, &[0.3, -0.1, -1.0]), "{position:?}");
        let rotation = numbers("rotation");
        let q = pose.rotation;
        assert!(
            close(&rotation, &[q.i, q.j, q.k, q.w]),
            "x, y, z, w: {rotation:?}"
        );
        let norm = rotation.iter().map(|c| c * c).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9, "a unit quaternion: {norm}");
    }
}
