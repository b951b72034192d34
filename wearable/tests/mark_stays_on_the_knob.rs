//! A mark anchored on the first frame stays on the object: the simulator, rendering headless
//! in-process, anchors an agent's label pin on the red knob as seen at time zero, and over a
//! second later — the head having moved — the pin is drawn where that frame's camera projects
//! the anchored point on the knob's face, with the label's words beside it.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use bevy::prelude::*;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, CameraModel, ControlMessage, FrameSeq, Intrinsics,
    ParticipantId, Pose, SessionId, Style,
};
use farsight_wearable::anchor::{AnchorPlugin, FramePublished};
use farsight_wearable::camera_model::to_nalgebra;
use farsight_wearable::link::LinkEvent;
use farsight_wearable::marks::MarksPlugin;
use farsight_wearable::simulator::head_camera;
use farsight_wearable::snapshot::{record_path, snapshot_app};
use farsight_wearable::workbench::{KNOB_DEPTH, KNOB_POSITION};
use nalgebra::{Point2, Point3, Quaternion, UnitQuaternion, Vector3};
use serde_json::Value;

const SIZE: UVec2 = UVec2::new(640, 360);
/// The saved frame: 1.5 s into the head's sway.
const LATER_FRAME: u32 = 46;
/// Pure green, which nothing in the workbench is.
const PIN_RGBA: u32 = 0x00ff_00ff;
const TOLERANCE_PX: f64 = 3.0;

/// The camera of the frame drawn at time zero.
fn first_camera() -> CameraModel {
    head_camera(0.0, SIZE)
}

/// An agent's label on the knob's centre as the first frame shows it, as the link would pass
/// it on, with the first frame already published.
fn mark_the_knob(mut published: MessageWriter<FramePublished>, mut link: MessageWriter<LinkEvent>) {
    let camera = first_camera();
    let pixel = camera
        .project(&to_nalgebra(KNOB_POSITION))
        .expect("the knob is in view");
    let n = camera.intrinsics.to_normalised(pixel);
    published.write(FramePublished {
        seq: FrameSeq(0),
        camera,
    });
    link.write(LinkEvent::Agent(ControlMessage::Annotate(Annotate {
        session: SessionId(1),
        id: AnnotationId(1),
        author: ParticipantId(2),
        kind: AnnotationKind::Text,
        frame: FrameSeq(0),
        points: vec![[n.x as f32, n.y as f32]],
        style: Style {
            rgba: PIN_RGBA,
            width: 4.0,
        },
        text: "this knob".into(),
    })));
}

/// Where the ray through the knob's centre from `camera` meets the knob's front face.
fn face_hit(camera: &CameraModel) -> Point3<f64> {
    let eye = Point3::from(camera.pose.translation);
    let knob = to_nalgebra(KNOB_POSITION);
    let face_z = f64::from(KNOB_POSITION.z) + f64::from(KNOB_DEPTH) / 2.0;
    eye + (knob - eye) * ((face_z - eye.z) / (knob.z - eye.z))
}

fn saved_camera(png: &Path) -> Result<CameraModel> {
    let record: Value = serde_json::from_slice(&std::fs::read(record_path(png))?)?;
    let camera = &record["camera"];
    let n = |v: &Value| v.as_f64().with_context(|| format!("{v} is not a number"));
    let t = &camera["pose"]["t"];
    let q = &camera["pose"]["q"];
    let size = |key: &str| -> Result<u32> {
        Ok(u32::try_from(camera[key].as_u64().context("not a size")?)?)
    };
    Ok(CameraModel {
        pose: Pose::new(
            Vector3::new(n(&t[0])?, n(&t[1])?, n(&t[2])?),
            UnitQuaternion::from_quaternion(Quaternion::new(
                n(&q[3])?,
                n(&q[0])?,
                n(&q[1])?,
                n(&q[2])?,
            )),
        ),
        intrinsics: Intrinsics {
            fx: n(&camera["fx"])?,
            fy: n(&camera["fy"])?,
            cx: n(&camera["cx"])?,
            cy: n(&camera["cy"])?,
            width: size("width")?,
            height: size("height")?,
        },
    })
}

#[test]
fn a_mark_anchored_at_time_zero_is_drawn_on_the_knob_later() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("later.png");
    let mut app = snapshot_app(SIZE, LATER_FRAME, png.clone());
    app.add_plugins((AnchorPlugin, MarksPlugin))
        .add_systems(Startup, mark_the_knob);
    ensure!(app.run() == AppExit::Success, "the simulator failed");

    let picture = image::open(&png)?.to_rgb8();
    let camera = saved_camera(&png)?;
    let expected: Point2<f64> = camera
        .project(&face_hit(&first_camera()))
        .context("the knob is behind the later camera")?;
    let head_moved = (camera.pose.translation - first_camera().pose.translation).norm();
    ensure!(head_moved > 0.1, "the head moved only {head_moved:.3} m");

    let (mut sum_x, mut sum_y, mut count) = (0.0, 0.0, 0u32);
    for (x, y, pixel) in picture.enumerate_pixels() {
        let [r, g, b] = pixel.0;
        if g > 200 && r < 60 && b < 60 {
            sum_x += f64::from(x) + 0.5;
            sum_y += f64::from(y) + 0.5;
            count += 1;
        }
    }
    ensure!(
        count >= 10,
        "only {count} pixels of the pin in frame {LATER_FRAME}"
    );
    let drawn = Point2::new(sum_x / f64::from(count), sum_y / f64::from(count));
    let off = (drawn - expected).norm();
    ensure!(
        off < TOLERANCE_PX,
        "frame {LATER_FRAME}: the pin is drawn at {drawn} ({count} pixels), {off:.1} px from \
         the anchored point's projection {expected}"
    );
    // The label's words are drawn beside the pin, up and to the right, in white.
    let (x0, y0) = (drawn.x as u32 + 8, (drawn.y as u32).saturating_sub(34));
    let words = (x0..x0 + 100)
        .flat_map(|x| (y0..y0 + 28).map(move |y| (x, y)))
        .filter(|&(x, y)| {
            picture
                .get_pixel_checked(x, y)
                .is_some_and(|p| p.0.iter().all(|c| *c > 230))
        })
        .count();
    ensure!(
        words >= 30,
        "only {words} white pixels of the label beside the pin"
    );
    Ok(())
}
