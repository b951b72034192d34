//! A mark's strokes are as wide on screen near as far: two ink strokes of the same pen width,
//! one 0.2 m from the head and one 0.6 m away, rendered headless in the simulator, cover the
//! same number of pixel rows (within 1 px) — a stroke drawn as a solid of fixed size in the
//! world would be three times thinner far away.

use anyhow::{Result, ensure};
use bevy::prelude::*;
use farsight_protocol::control::DepthSource;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, FrameSeq, ParticipantId, SessionId, Style,
};
use farsight_wearable::anchor::MarkAnchored;
use farsight_wearable::head_path::HeadPath;
use farsight_wearable::marks::MarksPlugin;
use farsight_wearable::simulator::head_camera;
use farsight_wearable::snapshot::snapshot_app;
use image::RgbImage;
use nalgebra::Point2;

const SIZE: UVec2 = UVec2::new(640, 360);
const PEN_WIDTH: f32 = 6.0;
/// Pure magenta and pure cyan, which nothing in the workbench is.
const NEAR_RGBA: u32 = 0xff00_ffff;
const FAR_RGBA: u32 = 0x00ff_ffff;
/// Both strokes run across these columns, above the device, where only the background is.
const FROM_X: f64 = 160.0;
const TO_X: f64 = 480.0;

/// A horizontal ink stroke across row `y` of the first frame, `depth` metres from the head.
fn stroke(id: u64, rgba: u32, y: f64, depth: f64) -> MarkAnchored {
    let camera = head_camera(0.0, SIZE);
    let at = |x: f64| {
        let p = camera.unproject(Point2::new(x, y), depth);
        Vec3::new(p.x as f32, p.y as f32, p.z as f32)
    };
    MarkAnchored {
        mark: Annotate {
            session: SessionId(1),
            id: AnnotationId(id),
            author: ParticipantId(2),
            kind: AnnotationKind::Ink,
            frame: FrameSeq(0),
            points: Vec::new(),
            style: Style {
                rgba,
                width: PEN_WIDTH,
            },
            text: String::new(),
        },
        points: vec![at(FROM_X), at((FROM_X + TO_X) / 2.0), at(TO_X)],
        depth: DepthSource::Measured,
        eye: HeadPath::default().pose_at(0.0).translation,
    }
}

fn draw_two_strokes(mut anchored: MessageWriter<MarkAnchored>) {
    anchored.write(stroke(1, NEAR_RGBA, 60.0, 0.2));
    anchored.write(stroke(2, FAR_RGBA, 120.0, 0.6));
}

/// The median, over the stroke's middle columns, of how many pixels of a column are `rgb`.
fn width_px(picture: &RgbImage, rgb: [u8; 3]) -> u32 {
    let close = |p: [u8; 3]| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 40);
    let mut widths: Vec<u32> = (FROM_X as u32 + 20..TO_X as u32 - 20)
        .map(|x| {
            (0..picture.height())
                .filter(|&y| close(picture.get_pixel(x, y).0))
                .count() as u32
        })
        .collect();
    widths.sort_unstable();
    widths[widths.len() / 2]
}

#[test]
fn strokes_are_as_wide_on_screen_near_as_far() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("strokes.png");
    let mut app = snapshot_app(SIZE, 1, png.clone());
    app.add_plugins(MarksPlugin)
        .add_systems(Startup, draw_two_strokes);
    ensure!(app.run() == AppExit::Success, "the simulator failed");

    let picture = image::open(&png)?.to_rgb8();
    let near = width_px(&picture, [255, 0, 255]);
    let far = width_px(&picture, [0, 255, 255]);
    ensure!(
        near >= 3,
        "the near stroke is {near} px wide: not drawn where it was anchored"
    );
    ensure!(
        near.abs_diff(far) <= 1,
        "the stroke 0.2 m away is {near} px wide, the one 0.6 m away {far} px"
    );
    Ok(())
}
