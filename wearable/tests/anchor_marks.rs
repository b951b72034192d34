//! An agent marks the simulator's red knob on a frame it watched, through a real relay, and
//! the wearable anchors the mark where the knob is: the world point it sends back is where
//! the ray through the marked pixel meets the knob's front face, measured, not guessed. A mark
//! on a frame the wearable no longer remembers falls back to the median plane and says so.

mod support;

use anyhow::{Context, Result, ensure};
use farsight_protocol::control::DepthSource;
use farsight_protocol::{
    Annotate, AnnotationId, AnnotationKind, CameraModel, ControlMessage, FrameSeq, ParticipantId,
    SessionId, Style,
};
use farsight_wearable::camera_model::to_nalgebra;
use farsight_wearable::workbench::{KNOB_DEPTH, KNOB_POSITION};
use nalgebra::{Point2, Point3};
use support::{HEIGHT, RUN_LIMIT, Relay, WIDTH, next_frame};

/// How far the anchored point may lie from the exact hit on the knob's face.
const TOLERANCE_M: f64 = 0.005;

/// Where the ray from the camera's centre through the knob's centre meets the plane of the
/// knob's front face: the point a depth measurement at the knob's pixel must give.
fn expected_hit(camera: &CameraModel) -> Point3<f64> {
    let eye = Point3::from(camera.pose.translation);
    let knob = to_nalgebra(KNOB_POSITION);
    let face_z = f64::from(KNOB_POSITION.z) + f64::from(KNOB_DEPTH) / 2.0;
    let t = (face_z - eye.z) / (knob.z - eye.z);
    eye + (knob - eye) * t
}

fn mark(session: SessionId, id: u64, frame: FrameSeq, points: Vec<[f32; 2]>) -> ControlMessage {
    ControlMessage::Annotate(Annotate {
        session,
        id: AnnotationId(id),
        author: ParticipantId(0),
        kind: AnnotationKind::Circle,
        frame,
        points,
        style: Style::default(),
        text: String::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_on_the_knob_is_anchored_on_the_knobs_face() -> Result<()> {
    let relay = Relay::start().await?;
    let deadline = tokio::time::Instant::now() + RUN_LIMIT;
    let mut wearable = relay.wearable(&relay.wearable_token, &[])?;
    let session = relay.session(&mut wearable, deadline).await?;
    let (mut agent, mut watcher) = relay.watch(session).await?;
    let frame = next_frame(&mut watcher, deadline).await?;
    let camera = frame.camera;
    let k = camera.intrinsics;
    ensure!(
        (k.width, k.height) == (WIDTH, HEIGHT),
        "frame {} is {}×{}",
        frame.frame.0,
        k.width,
        k.height
    );

    // A circle around the knob: its centre on the knob's centre, its rim 2 cm to the right.
    let centre = camera
        .project(&to_nalgebra(KNOB_POSITION))
        .context("the knob is behind the camera")?;
    let rim = camera
        .project(&(to_nalgebra(KNOB_POSITION) + nalgebra::Vector3::new(0.02, 0.0, 0.0)))
        .context("the rim is behind the camera")?;
    let normalised = |p: Point2<f64>| {
        let n = k.to_normalised(p);
        [n.x as f32, n.y as f32]
    };
    agent
        .send(&mark(
            session,
            1,
            frame.frame,
            vec![normalised(centre), normalised(rim)],
        ))
        .await?;
    // A frame long gone (or never seen) can only be anchored on the median plane.
    agent
        .send(&mark(
            session,
            2,
            FrameSeq(frame.frame.0 + 1_000_000),
            vec![[0.5, 0.5]],
        ))
        .await?;

    let mut resolved = std::collections::HashMap::new();
    while resolved.len() < 2 {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (id, depth, points) = agent
            .wait_for(left, |m| match m {
                ControlMessage::AnchorResolved {
                    id, depth, points, ..
                } => Some((*id, *depth, points.clone())),
                _ => None,
            })
            .await
            .with_context(|| format!("no AnchorResolved; log:\n{}", wearable.log()))?;
        resolved.insert(id.0, (depth, points));
    }

    let (depth, points) = &resolved[&1];
    ensure!(
        *depth == DepthSource::Measured,
        "the knob's mark was anchored by {depth:?}"
    );
    ensure!(points.len() == 2, "{} points for 2 marked", points.len());
    let [x, y, z] = points[0];
    let got = Point3::new(f64::from(x), f64::from(y), f64::from(z));
    let expected = expected_hit(&camera);
    let error = (got - expected).norm();
    ensure!(
        error < TOLERANCE_M,
        "frame {}: the mark's centre anchored at {got}, {:.1} mm from the knob's face at \
         {expected}",
        frame.frame.0,
        error * 1000.0
    );

    let (depth, points) = &resolved[&2];
    ensure!(
        *depth == DepthSource::MedianPlane && points.len() == 1,
        "the mark on an unknown frame: {depth:?}, {points:?}"
    );

    wearable.stop_still_running().await?;
    relay.running.shutdown().await;
    Ok(())
}
