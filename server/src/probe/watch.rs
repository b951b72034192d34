//! `probe watch`: join a session as an agent and report every frame and a summary:
//! frames, groups complete and dropped, bit rate and delay from capture to arrival.

use std::time::{Duration, Instant};

use farsight_client::{Connection, GroupEnd, WatchEvent};
use farsight_protocol::{Micros, SessionId};
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

#[derive(Debug, Serialize)]
struct FrameLine {
    group: u64,
    frame: u64,
    keyframe: bool,
    bytes: usize,
    delay_ms: f64,
    position: [f64; 3],
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

pub async fn watch(conn: &mut Connection, options: &WatchOptions) -> anyhow::Result<WatchReport> {
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
                let t = r.object.camera.pose.translation;
                let line = FrameLine {
                    group: r.header.group.0,
                    frame: r.object.frame.0,
                    keyframe: r.object.flags.keyframe,
                    bytes: r.object.payload.len(),
                    delay_ms,
                    position: [t.x, t.y, t.z],
                };
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
                        t.x,
                        t.y,
                        t.z
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
