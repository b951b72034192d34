//! Capture: once the renderer is warm and the link is up, every rendered frame is read back
//! from the off-screen image with the camera that drew it and fed to the encoder, in order.
//! Time starts when publishing does, so frame sequence N shows the head at N / 30 s.

use std::collections::BTreeMap;
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use farsight_media::{Encoder, EncoderError, FrameInfo, RawFormat};
use farsight_protocol::{FrameSeq, Micros};

use crate::anchor::FramePublished;
use crate::camera_model::{camera_model, perspective};
use crate::encoder;
use crate::headless::{FRAME_STEP, OffScreen, RendererReady};
use crate::link::{LinkEvent, LinkOutbox, LinkStatus};
use crate::simulator::Head;

/// Read-backs that may complete ahead of a late one before the late one is given up for lost.
const REORDER_LIMIT: usize = 8;

#[derive(Debug, Clone)]
pub struct CapturePlugin {
    /// Publish this many frames, then flush and stop; `None` publishes until killed.
    pub frames: Option<u32>,
}

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Stream {
            limit: self.frames.map(u64::from),
            phase: Phase::Warming,
            rendered: 0,
            next_to_encode: 0,
            read_back: BTreeMap::new(),
            encoder: None,
            next_capture: Duration::ZERO,
        })
        .add_message::<FramePublished>()
        .add_systems(Startup, hold_the_head_still)
        .add_systems(Update, answer_the_link)
        .add_systems(Last, capture_frame);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the renderer to compile its pipelines and for the relay.
    Warming,
    Publishing,
    /// Every frame asked for is rendered (or publishing failed).
    Ended,
}

#[derive(Resource, Debug)]
struct Stream {
    limit: Option<u64>,
    phase: Phase,
    /// Frames rendered for the stream so far: the next frame's sequence number.
    rendered: u64,
    next_to_encode: u64,
    /// Read-backs that arrived ahead of an earlier frame.
    read_back: BTreeMap<u64, (FrameInfo, Vec<u8>)>,
    encoder: Option<Encoder>,
    /// The time the next frame is due: a window renders as fast as the display refreshes,
    /// and the stream takes one frame per frame step of it.
    next_capture: Duration,
}

impl Stream {
    /// Encodes the read-backs that are next in sequence; ends the stream after the last frame.
    fn encode_in_order(&mut self) -> Result<(), EncoderError> {
        let Some(encoder) = &self.encoder else {
            return Ok(());
        };
        loop {
            let next = match self.read_back.first_key_value() {
                Some((&seq, _)) if seq == self.next_to_encode => seq,
                Some((&seq, _)) if self.read_back.len() > REORDER_LIMIT => {
                    warn!(
                        lost = self.next_to_encode,
                        next = seq,
                        "a frame's read-back never came"
                    );
                    seq
                }
                _ => return Ok(()),
            };
            let (info, rgba) = self
                .read_back
                .remove(&next)
                .expect("the key was just found");
            encoder.push(info, rgba)?;
            self.next_to_encode = next + 1;
            if Some(self.next_to_encode) == self.limit {
                encoder.finish();
            }
        }
    }
}

/// The frame a read-back belongs to, on the screenshot entity.
#[derive(Component, Debug)]
struct Rendered(FrameInfo);

fn hold_the_head_still(mut time: ResMut<Time<Virtual>>) {
    time.pause();
}

#[allow(clippy::too_many_arguments)]
fn capture_frame(
    mut commands: Commands,
    mut stream: ResMut<Stream>,
    mut time: ResMut<Time<Virtual>>,
    ready: Res<RendererReady>,
    link: Res<LinkStatus>,
    mut outbox: ResMut<LinkOutbox>,
    off_screen: Res<OffScreen>,
    head: Single<(&GlobalTransform, &Projection), With<Head>>,
    mut published: MessageWriter<FramePublished>,
    mut exit: MessageWriter<AppExit>,
) {
    match stream.phase {
        Phase::Ended => return,
        Phase::Publishing => {}
        Phase::Warming => {
            if !ready.is_ready() || link.session.is_none() {
                return;
            }
            let started = outbox
                .0
                .take()
                .ok_or(EncoderError::Missing("the link's frame channel"))
                .and_then(|out| {
                    encoder::start(off_screen.size.x, off_screen.size.y, RawFormat::Rgba, out)
                });
            match started {
                Ok(encoder) => stream.encoder = Some(encoder),
                Err(e) => {
                    error!(error = %e, "could not start the encoder");
                    stream.phase = Phase::Ended;
                    exit.write(AppExit::error());
                    return;
                }
            }
            // This frame is drawn at time zero; from here on time advances one step a frame.
            time.unpause();
            stream.phase = Phase::Publishing;
            info!(
                width = off_screen.size.x,
                height = off_screen.size.y,
                "publishing"
            );
        }
    }
    if time.elapsed() < stream.next_capture {
        return;
    }
    // A little early still counts, so a 60 Hz display gives every other frame.
    stream.next_capture = time.elapsed() + FRAME_STEP.mul_f32(0.9);
    let (transform, projection) = *head;
    let Some(projection) = perspective(projection) else {
        error!("the head camera's projection is not perspective");
        stream.phase = Phase::Ended;
        exit.write(AppExit::error());
        return;
    };
    let info = FrameInfo {
        seq: FrameSeq(stream.rendered),
        capture: Micros::now(),
        camera: camera_model(transform, projection, off_screen.size),
    };
    published.write(FramePublished {
        seq: info.seq,
        camera: info.camera,
    });
    commands
        .spawn((Screenshot::image(off_screen.image.clone()), Rendered(info)))
        .observe(encode_frame);
    stream.rendered += 1;
    if Some(stream.rendered) == stream.limit {
        stream.phase = Phase::Ended;
        time.pause();
    }
}

fn encode_frame(
    captured: On<ScreenshotCaptured>,
    rendered: Query<&Rendered>,
    mut stream: ResMut<Stream>,
    mut exit: MessageWriter<AppExit>,
) {
    let Ok(Rendered(info)) = rendered.get(captured.entity) else {
        return;
    };
    let Some(rgba) = captured.image.data.clone() else {
        error!(frame = info.seq.0, "the read-back holds no pixels");
        exit.write(AppExit::error());
        return;
    };
    stream.read_back.insert(info.seq.0, (*info, rgba));
    if let Err(e) = stream.encode_in_order() {
        error!(error = %e, "encoding failed");
        exit.write(AppExit::error());
    }
}

fn answer_the_link(mut events: MessageReader<LinkEvent>, mut stream: ResMut<Stream>) {
    for event in events.read() {
        if let Some(encoder) = &mut stream.encoder {
            encoder::answer(encoder, event);
        }
    }
}
