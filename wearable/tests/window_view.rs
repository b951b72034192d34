//! The simulator in a real window on a virtual X display, streaming to a real relay: an agent
//! joins and writes a label on the red knob in a frame it watched. The X server's own picture
//! of the window then shows the pin on the knob where the view's camera projects the anchored
//! point, the label's words beside it, and the HUD saying the link is live, who is watching
//! and the instruction. Keys pressed on the window walk the head, as the stream's poses show,
//! and P puts it back on its path.

mod support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use farsight_client::Watcher;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, ControlMessage, Micros, Object, ParticipantId,
    SessionId, Style,
};
use farsight_wearable::camera_model::to_nalgebra;
use farsight_wearable::window::TITLE;
use farsight_wearable::workbench::KNOB_POSITION;
use image::RgbImage;
use nalgebra::{Point2, Point3, Vector3};
use support::display::Display;
use support::{HEIGHT, RUN_LIMIT, Relay, WIDTH, Wearable, next_frame};

/// Pure green, which nothing in the workbench is.
const PIN_RGBA: u32 = 0x00ff_00ff;
const TOLERANCE_PX: f64 = 3.0;
const INSTRUCTION: &str = "Turn this knob a quarter left";

/// Pixels in `rect` (x, y, width, height) that `keep` accepts.
fn count(
    picture: &RgbImage,
    (x0, y0, w, h): (u32, u32, u32, u32),
    keep: impl Fn([u8; 3]) -> bool,
) -> usize {
    (x0..x0 + w)
        .flat_map(|x| (y0..y0 + h).map(move |y| (x, y)))
        .filter(|&(x, y)| picture.get_pixel_checked(x, y).is_some_and(|p| keep(p.0)))
        .count()
}

fn pure_green([r, g, b]: [u8; 3]) -> bool {
    g > 200 && r < 60 && b < 60
}

fn white(p: [u8; 3]) -> bool {
    p.iter().all(|c| *c > 230)
}

/// The HUD's "Live" green.
fn live_green([r, g, b]: [u8; 3]) -> bool {
    g > 180 && r < 130 && b > 60 && b < 150
}

/// The centre of the pure green pixels, and how many there are.
fn pin(picture: &RgbImage) -> Option<(Point2<f64>, u32)> {
    let (mut x, mut y, mut n) = (0.0, 0.0, 0u32);
    for (px, py, pixel) in picture.enumerate_pixels() {
        if pure_green(pixel.0) {
            x += f64::from(px) + 0.5;
            y += f64::from(py) + 0.5;
            n += 1;
        }
    }
    (n >= 10).then(|| (Point2::new(x / f64::from(n), y / f64::from(n)), n))
}

/// The simulator in a window on its own X display, publishing to a relay, its head holding
/// still where the built-in path starts, so pictures and poses can be checked.
struct StillWindow {
    display: Display,
    relay: Relay,
    wearable: Wearable,
    session: SessionId,
    deadline: tokio::time::Instant,
}

/// Where the still head is and what it looks at.
const EYE: [f32; 3] = [0.0, 1.2, 0.6];
const LOOK_AT: [f32; 3] = [0.0, 0.84, 0.0];

impl StillWindow {
    async fn start() -> Result<Self> {
        let display = Display::start(WIDTH, HEIGHT)?;
        let relay = Relay::start().await?;
        let deadline = tokio::time::Instant::now() + RUN_LIMIT;
        let path = relay.dir().join("still.json");
        std::fs::write(
            &path,
            serde_json::json!({"waypoints": [{"at_s": 0, "eye": EYE, "look_at": LOOK_AT}]})
                .to_string(),
        )?;
        let path = path.to_str().context("a UTF-8 temporary path")?;
        let mut wearable = relay.spawn_wearable(
            &relay.wearable_token,
            (WIDTH, HEIGHT),
            &["--sim", "--path", path],
            Some(&display.name),
        )?;
        let session = relay.session(&mut wearable, deadline).await?;
        Ok(Self {
            display,
            relay,
            wearable,
            session,
            deadline,
        })
    }

    async fn stop(mut self) -> Result<()> {
        self.wearable.stop_still_running().await?;
        self.relay.running.shutdown().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_shows_an_agents_label_on_the_knob_with_the_hud() -> Result<()> {
    let window = StillWindow::start().await?;
    let StillWindow {
        display,
        relay,
        wearable,
        session,
        deadline,
    } = &window;
    let (session, deadline) = (*session, *deadline);
    let (mut agent, mut watcher) = relay.watch(session).await?;
    let frame = next_frame(&mut watcher, deadline).await?;
    let camera = frame.camera;
    let knob = camera
        .project(&to_nalgebra(KNOB_POSITION))
        .context("the knob is behind the camera")?;
    let n = camera.intrinsics.to_normalised(knob);
    agent
        .send(&ControlMessage::Annotate(Annotate {
            session,
            id: AnnotationId(1),
            author: ParticipantId(0),
            kind: AnnotationKind::Text,
            frame: frame.frame,
            points: vec![[n.x as f32, n.y as f32]],
            style: Style {
                rgba: PIN_RGBA,
                width: 4.0,
            },
            text: INSTRUCTION.into(),
        }))
        .await?;
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let anchored = agent
        .wait_for(left, |m| match m {
            ControlMessage::AnchorResolved { points, .. } => points.first().copied(),
            _ => None,
        })
        .await
        .with_context(|| format!("no AnchorResolved; log:\n{}", wearable.log()))?;
    // The window shows the head camera's view at the window's size: the stream's camera.
    let expected = camera
        .project(&Point3::from(anchored.map(f64::from)))
        .context("the anchor is behind the camera")?;

    // Poll the X server's picture until the pin is drawn: the window renders in real time.
    let picture = loop {
        let picture = display.screenshot(TITLE)?;
        if pin(&picture).is_some() {
            break picture;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "no pin in the window; log:\n{}",
            wearable.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One more frame for the HUD's text, laid out a frame after the mark.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let picture = display.screenshot(TITLE).unwrap_or(picture);
    let saved = relay.dir().join("window.png");
    picture.save(&saved)?;
    let png = std::env::var_os("FARSIGHT_WINDOW_PNG");
    if let Some(copy) = &png {
        std::fs::copy(&saved, copy)?;
    }

    ensure!(
        (picture.width(), picture.height()) == (WIDTH, HEIGHT),
        "the window is {}×{}",
        picture.width(),
        picture.height()
    );
    let (drawn, pixels) = pin(&picture).context("the pin went away")?;
    let off = (drawn - expected).norm();
    ensure!(
        off < TOLERANCE_PX,
        "the pin is drawn at {drawn} ({pixels} pixels), {off:.1} px from the anchored point's \
         projection {expected}"
    );
    let beside = (
        drawn.x as u32 + 8,
        (drawn.y as u32).saturating_sub(34),
        200,
        28,
    );
    let words = count(&picture, beside, white);
    ensure!(
        words >= 40,
        "only {words} white pixels of the label beside the pin"
    );
    let status = count(&picture, (0, 0, WIDTH / 3, 40), live_green);
    ensure!(
        status >= 20,
        "the HUD does not say Live: {status} green pixels top left"
    );
    let watching = count(&picture, (WIDTH * 2 / 3, 0, WIDTH / 3, 40), white);
    ensure!(
        watching >= 40,
        "the HUD names no watcher: {watching} white pixels top right"
    );
    let instruction = count(&picture, (0, HEIGHT - 50, WIDTH, 50), white);
    ensure!(
        instruction >= 100,
        "the instruction is not shown: {instruction} white pixels at the bottom"
    );

    window.stop().await
}

/// Frames from `watcher` until one captured after `since`.
async fn frame_after(
    watcher: &mut Watcher,
    since: Micros,
    deadline: tokio::time::Instant,
) -> Result<Object> {
    loop {
        let frame = next_frame(watcher, deadline).await?;
        if frame.capture > since {
            return Ok(frame);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_walk_the_head_and_p_puts_it_back_on_its_path() -> Result<()> {
    let window = StillWindow::start().await?;
    let (_agent, mut watcher) = window.relay.watch(window.session).await?;
    let deadline = window.deadline;
    let eye = Vector3::from(EYE.map(f64::from));
    let still = next_frame(&mut watcher, deadline)
        .await?
        .camera
        .pose
        .translation;
    ensure!(
        (still - eye).norm() < 1e-3,
        "the head is at {still}, not {eye}"
    );

    // Hold W a moment: the head walks towards the bench, along the ground. It is held at
    // least 0.4 s and until two frames were made after it went down: software rendering
    // under load can take longer than that for one frame, and a key pressed and released
    // within one frame walks nowhere.
    window.display.focus(TITLE)?;
    window.display.xdotool(&["keydown", "w"])?;
    let down = Micros::now();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let first = frame_after(&mut watcher, down, deadline).await?;
    frame_after(&mut watcher, first.capture, deadline).await?;
    window.display.xdotool(&["keyup", "w"])?;
    let released = Micros::now();
    let held = (released.0 - down.0) as f64 / 1e6;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let walked = frame_after(&mut watcher, released, deadline)
        .await?
        .camera
        .pose
        .translation;
    let step = walked - still;
    // At 0.5 m/s, give or take the frames around the key's edges.
    let most = 0.5 * held + 0.3;
    ensure!(
        (0.02..most).contains(&-step.z) && step.x.abs() < 0.01 && step.y.abs() < 0.01,
        "holding W for {held:.2} s moved the head by {step} (forward is −z)"
    );

    // P: back on the scripted path, which holds still where it started. The key is read at
    // the start of a frame, so a frame or two already in flight still shows the old pose.
    window.display.xdotool(&["key", "p"])?;
    let pressed = tokio::time::Instant::now();
    loop {
        let back = next_frame(&mut watcher, deadline)
            .await?
            .camera
            .pose
            .translation;
        if (back - eye).norm() < 1e-3 {
            break;
        }
        ensure!(
            pressed.elapsed() < Duration::from_secs(3),
            "3 s after P the head is at {back}, not back on its path at {eye}"
        );
    }
    window.stop().await
}
