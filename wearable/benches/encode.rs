//! Encoder benchmark: 1280×720 RGBA frames (a moving gradient) through the wearable's
//! `Encoder` set to each full-rate rung of the ladder. Per rung: time from `push` to the encoded
//! frame coming out, p50/p95, with frames pushed at 30 fps; and frames per second pushed flat
//! out. Reference, same frames, size and run: a plain GStreamer pipeline doing the same scaling
//! and encoding (appsrc ! videoscale ! videoconvert ! x264enc ! fakesink), nothing matched.
//!
//! `cargo bench -p farsight-wearable --bench encode`; FARSIGHT_BENCH_SECONDS sets each window.

#[path = "../../server/benches/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use farsight_media::{
    BITRATE_KBPS, Encoded, Encoder, FULL_FPS, FrameInfo, KEYFRAME_INTERVAL, Ladder, RawFormat, Rung,
};
use farsight_protocol::{CameraModel, FrameSeq, Intrinsics, Micros, Pose};
use farsight_wearable::encoder;
use farsight_wearable::headless::FRAME_STEP;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::json;
use tokio::sync::mpsc;

const SOURCE: (u32, u32) = (1280, 720);
/// Distinct frames, cycled: one second of motion, then a jump back, as a key frame would see.
const DISTINCT: usize = 30;

/// A diagonal gradient with bars that slide a few pixels a frame: smooth areas and edges in
/// motion, closer to a camera picture than a flat colour.
fn frames() -> Vec<Vec<u8>> {
    let (width, height) = SOURCE;
    (0..DISTINCT)
        .map(|t| {
            let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
            for y in 0..height {
                for x in 0..width {
                    let moved = x + t as u32 * 6;
                    let bar = if (moved / 40).is_multiple_of(2) {
                        60
                    } else {
                        0
                    };
                    let r = ((x + y) / 8) as u8;
                    let g = (y / 3) as u8 ^ (moved / 5) as u8;
                    let b = (moved / 7) as u8;
                    rgba.extend_from_slice(&[r.saturating_add(bar), g, b.saturating_add(bar), 255]);
                }
            }
            rgba
        })
        .collect()
}

fn info(seq: u64) -> FrameInfo {
    FrameInfo {
        seq: FrameSeq(seq),
        capture: Micros(seq),
        camera: CameraModel {
            pose: Pose::default(),
            intrinsics: Intrinsics::from_hfov(SOURCE.0, SOURCE.1, 1.0),
        },
    }
}

/// Starts an encoder on `rung`; a thread stamps each encoded frame as it comes out.
fn encoder_on(rung: &Rung) -> (Encoder, std::thread::JoinHandle<Vec<(u64, Instant)>>) {
    let (tx, mut rx) = mpsc::channel(64);
    let mut encoder =
        encoder::start(SOURCE.0, SOURCE.1, RawFormat::Rgba, tx).expect("GStreamer with x264enc");
    encoder.set_rung(rung);
    let out = std::thread::spawn(move || {
        let mut out = Vec::new();
        while let Some(Encoded::Frame(object)) = rx.blocking_recv() {
            out.push((object.frame.0, Instant::now()));
        }
        out
    });
    (encoder, out)
}

/// Push-to-encoded delays, ms, with frames pushed at the render rate.
fn delays(frames: &[Vec<u8>], rung: &Rung, count: u64) -> Vec<f64> {
    let (encoder, out) = encoder_on(rung);
    let started = Instant::now();
    let mut pushed = Vec::new();
    for seq in 0..count {
        let due = started + FRAME_STEP * seq as u32;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let frame = frames[seq as usize % frames.len()].clone();
        pushed.push(Instant::now());
        encoder.push(info(seq), frame).expect("frame accepted");
    }
    encoder.finish();
    let mut delays: Vec<f64> = out
        .join()
        .expect("the receiving thread")
        .into_iter()
        .map(|(seq, at)| (at - pushed[seq as usize]).as_secs_f64() * 1000.0)
        .collect();
    delays.sort_by(f64::total_cmp);
    delays
}

/// Frames per second through the encoder, pushed as fast as it takes them.
fn throughput(frames: &[Vec<u8>], rung: &Rung, count: u64) -> f64 {
    let (encoder, out) = encoder_on(rung);
    let started = Instant::now();
    for seq in 0..count {
        let frame = frames[seq as usize % frames.len()].clone();
        encoder.push(info(seq), frame).expect("frame accepted");
    }
    encoder.finish();
    let encoded = out.join().expect("the receiving thread").len();
    encoded as f64 / started.elapsed().as_secs_f64()
}

/// The same frames through a plain pipeline with the encoder's settings, flat out.
fn reference(frames: &[Vec<u8>], rung: &Rung, count: u64) -> f64 {
    let (width, height) = SOURCE;
    let step = FRAME_STEP.as_nanos() as u64;
    let description = format!(
        "appsrc name=src format=time is-live=true block=true \
         caps=video/x-raw,format=RGBA,width={width},height={height},framerate=30/1 ! \
         videoscale add-borders=false ! \
         video/x-raw,width={},height={},pixel-aspect-ratio=1/1 ! videoconvert ! \
         x264enc tune=zerolatency speed-preset=ultrafast bitrate={BITRATE_KBPS} \
         key-int-max={KEYFRAME_INTERVAL} ! \
         video/x-h264,stream-format=byte-stream,alignment=au,profile=constrained-baseline ! \
         fakesink sync=false",
        rung.width, rung.height
    );
    let pipeline = gst::parse::launch(&description)
        .expect("the reference pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let source = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .expect("appsrc");
    source.set_max_bytes(4 * u64::from(width) * u64::from(height) * 4);
    pipeline
        .set_state(gst::State::Playing)
        .expect("the reference starts");
    let started = Instant::now();
    for seq in 0..count {
        let mut buffer = gst::Buffer::from_mut_slice(frames[seq as usize % frames.len()].clone());
        {
            let buffer = buffer.get_mut().expect("one owner");
            buffer.set_pts(gst::ClockTime::from_nseconds(step * seq));
            buffer.set_duration(gst::ClockTime::from_nseconds(step));
        }
        source.push_buffer(buffer).expect("frame accepted");
    }
    let _ = source.end_of_stream();
    let bus = pipeline.bus().expect("a bus");
    bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(120),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    )
    .expect("the reference ends");
    let fps = count as f64 / started.elapsed().as_secs_f64();
    let _ = pipeline.set_state(gst::State::Null);
    fps
}

fn main() {
    gst::init().expect("GStreamer");
    let seconds: u64 = common::env_or("FARSIGHT_BENCH_SECONDS", 5);
    let count = seconds * u64::from(FULL_FPS);
    let frames = frames();
    let rungs: Vec<Rung> = Ladder::new(SOURCE)
        .rungs()
        .iter()
        .copied()
        .filter(|r| r.fps == FULL_FPS)
        .collect();
    let mut rows = Vec::new();
    let mut table = String::new();
    for rung in &rungs {
        let delays = delays(&frames, rung, count);
        let fps = throughput(&frames, rung, count);
        let reference = reference(&frames, rung, count);
        let (p50, p95) = (
            common::percentile(&delays, 50.0),
            common::percentile(&delays, 95.0),
        );
        let row = format!(
            "| {}×{} | {p50:.1} ms | {p95:.1} ms | {fps:.1} fps | {reference:.1} fps |",
            rung.width, rung.height
        );
        println!("{row}");
        table.push_str(&row);
        table.push('\n');
        rows.push(
            json!({"width": rung.width, "height": rung.height, "frames": count,
            "push_to_encoded_ms_p50": p50, "push_to_encoded_ms_p95": p95,
            "encoder_fps": fps, "reference_fps": reference}),
        );
        // Let the machine cool between rungs so one rung's tail does not slow the next.
        std::thread::sleep(Duration::from_millis(500));
    }
    common::write_json(
        "wearable-encoding",
        &json!({"date": common::today(), "commit": common::git_commit(),
            "machine": common::machine(), "seconds": seconds, "source": [SOURCE.0, SOURCE.1],
            "rungs": rows}),
    )
    .expect("writing benchmarks/wearable-encoding.json");
    common::write_section(
        "wearable-encoding",
        &format!(
            "### Encoding\n\n`cargo bench -p farsight-wearable --bench encode` on {} ({}, commit {}, \
             no GPU, so x264): 1280×720 RGBA frames (a moving gradient with sliding bars) through \
             the wearable's encoder set to each full-rate rung of the ladder, scaled, converted \
             and encoded (x264, zerolatency, ultrafast, {BITRATE_KBPS} kbit/s); {count} frames per \
             measurement. Push → encoded is from `push` to the encoded frame leaving the encoder, \
             frames pushed at 30 fps; throughput pushes flat out. Reference, same frames, size and \
             run: a plain pipeline (`appsrc ! videoscale ! videoconvert ! x264enc ! fakesink`, \
             same settings, no frame matching) pushed flat out.\n\n\
             | encoded | push → encoded p50 | p95 | throughput | reference |\n\
             |---|---|---|---|---|\n{table}",
            common::today(),
            common::machine(),
            common::git_commit(),
        ),
    )
    .expect("writing BENCHMARKS.md");
}
