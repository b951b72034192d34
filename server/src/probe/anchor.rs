//! How the probe anchors agents' marks, as a wearable without a depth sensor would: each
//! marked point is unprojected with the camera of the frame it was drawn on, onto the plane
//! through the point the synthetic head looks at (the scene's median depth). Sans-IO.

use farsight_media::FrameRing;
use farsight_protocol::ControlMessage;
use farsight_protocol::control::{Annotate, DepthSource};
use nalgebra::{Point2, Point3};

/// The world points of a mark, as `AnchorResolved`, or `None` when its frame is no longer (or
/// never was) in `frames`.
pub fn anchor_on_plane(
    frames: &FrameRing,
    mark: &Annotate,
    scene_centre: &Point3<f64>,
) -> Option<ControlMessage> {
    let camera = frames.get(mark.frame)?;
    let depth = camera.depth_of(scene_centre);
    if depth <= 0.0 {
        return None;
    }
    let k = &camera.intrinsics;
    let points = mark
        .points
        .iter()
        .map(|[x, y]| {
            let pixel = Point2::new(
                f64::from(*x) * k.width as f64,
                f64::from(*y) * k.height as f64,
            );
            let w = camera.unproject(pixel, depth);
            [w.x as f32, w.y as f32, w.z as f32]
        })
        .collect();
    Some(ControlMessage::AnchorResolved {
        session: mark.session,
        id: mark.id,
        depth: DepthSource::MedianPlane,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::synthetic_pose;
    use farsight_protocol::control::{AnnotationKind, Style};
    use farsight_protocol::{
        AnnotationId, CameraModel, FrameSeq, Intrinsics, ParticipantId, SessionId,
    };

    fn mark(frame: u64, points: Vec<[f32; 2]>) -> Annotate {
        Annotate {
            session: SessionId(3),
            id: AnnotationId(9),
            author: ParticipantId(0),
            kind: AnnotationKind::Arrow,
            frame: FrameSeq(frame),
            points,
            style: Style::default(),
            text: String::new(),
        }
    }

    #[test]
    fn resolved_points_project_back_to_the_marked_pixels_and_lie_on_the_plane() {
        let mut cameras = FrameRing::new(4);
        let intrinsics = Intrinsics::from_hfov(640, 360, 1.0);
        for f in 0..6 {
            let pose = synthetic_pose(f as f64 * 0.3);
            cameras.record(FrameSeq(f), CameraModel { pose, intrinsics });
        }
        assert!(anchor_on_plane(&cameras, &mark(1, vec![[0.5, 0.5]]), &Point3::origin()).is_none());
        let Some(ControlMessage::AnchorResolved { points, depth, .. }) = anchor_on_plane(
            &cameras,
            &mark(4, vec![[0.3, 0.4], [0.6, 0.55]]),
            &Point3::origin(),
        ) else {
            panic!("frame 4 is known");
        };
        assert_eq!(depth, DepthSource::MedianPlane);
        let camera = cameras.get(FrameSeq(4)).expect("known");
        for (p, [x, y]) in points.iter().zip([[0.3, 0.4], [0.6, 0.55]]) {
            let w = Point3::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            let px = camera.project(&w).expect("in front");
            assert!(
                (px.x - x * 640.0).abs() < 0.01 && (px.y - y * 360.0).abs() < 0.01,
                "{px}"
            );
            let depth = camera.depth_of(&w);
            assert!((depth - camera.depth_of(&Point3::origin())).abs() < 1e-5);
        }
    }
}
