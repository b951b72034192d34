//! The recent-frames camera ring: the camera of each frame published in the last few seconds,
//! by sequence number, and how an agent's mark on one of those frames is placed in the world
//! (unprojected with that frame's camera at the depth seen there). No IO.

use std::collections::VecDeque;

use farsight_protocol::control::DepthSource;
use farsight_protocol::{Annotate, CameraModel, FrameSeq};
use nalgebra::{Point2, Vector3};

/// The depth of the fallback plane when not even the median depth can be measured.
pub const DEFAULT_DEPTH_M: f64 = 1.0;

/// Rays cast across a frame (columns × rows) to find its median depth.
const MEDIAN_GRID: (u32, u32) = (16, 9);

/// The cameras of the last `capacity` frames published, oldest first.
#[derive(Clone, Debug)]
pub struct FrameRing {
    frames: VecDeque<(FrameSeq, CameraModel)>,
    capacity: usize,
}

impl FrameRing {
    /// Remembers the last `capacity` frames (at least one): a few seconds, since marks refer to
    /// what an agent saw a moment ago.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            frames: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub fn record(&mut self, seq: FrameSeq, camera: CameraModel) {
        if self.frames.len() == self.capacity {
            self.frames.pop_front();
        }
        self.frames.push_back((seq, camera));
    }

    pub fn get(&self, seq: FrameSeq) -> Option<&CameraModel> {
        self.frames
            .iter()
            .rev()
            .find_map(|(s, c)| (*s == seq).then_some(c))
    }

    pub fn latest(&self) -> Option<&CameraModel> {
        self.frames.back().map(|(_, c)| c)
    }

    /// Anchors a mark: each point unprojected with its frame's camera at the depth
    /// `depth_at` measures there; when a point's depth is unknown, or the frame is forgotten
    /// (then the latest frame stands in), every point on the plane at the median depth.
    /// `None` before any frame was published.
    pub fn resolve(
        &self,
        mark: &Annotate,
        depth_at: impl Fn(&CameraModel, Point2<f64>) -> Option<f64>,
    ) -> Option<Anchor> {
        let (camera, remembered) = match self.get(mark.frame) {
            Some(camera) => (camera, true),
            None => (self.latest()?, false),
        };
        let k = &camera.intrinsics;
        let pixels: Vec<Point2<f64>> = mark
            .points
            .iter()
            .map(|[x, y]| k.from_normalised(Point2::new(f64::from(*x), f64::from(*y))))
            .collect();
        let measured: Option<Vec<f64>> = remembered
            .then(|| pixels.iter().map(|p| depth_at(camera, *p)).collect())
            .flatten();
        let (depths, depth) = match measured {
            Some(depths) => (depths, DepthSource::Measured),
            None => {
                let median = median_depth(camera, &depth_at).unwrap_or(DEFAULT_DEPTH_M);
                (vec![median; pixels.len()], DepthSource::MedianPlane)
            }
        };
        let points = pixels
            .iter()
            .zip(depths)
            .map(|(pixel, d)| to_f32(camera.unproject(*pixel, d).coords))
            .collect();
        Some(Anchor {
            points,
            depth,
            eye: to_f32(camera.pose.translation),
            remembered,
        })
    }
}

/// A mark placed in the world, in the wire's single precision.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchor {
    /// One world point per marked point, in order.
    pub points: Vec<[f32; 3]>,
    pub depth: DepthSource,
    /// Where the camera that anchored it was.
    pub eye: [f32; 3],
    /// Whether the marked frame itself was remembered (not a stand-in).
    pub remembered: bool,
}

/// The median depth over a grid of pixels of a frame, if any is known.
fn median_depth(
    camera: &CameraModel,
    depth_at: impl Fn(&CameraModel, Point2<f64>) -> Option<f64>,
) -> Option<f64> {
    let k = &camera.intrinsics;
    let (columns, rows) = MEDIAN_GRID;
    let mut depths: Vec<f64> = (0..rows)
        .flat_map(|row| (0..columns).map(move |column| (column, row)))
        .filter_map(|(column, row)| {
            let pixel = Point2::new(
                (f64::from(column) + 0.5) / f64::from(columns) * f64::from(k.width),
                (f64::from(row) + 0.5) / f64::from(rows) * f64::from(k.height),
            );
            depth_at(camera, pixel)
        })
        .collect();
    depths.sort_by(f64::total_cmp);
    depths.get(depths.len() / 2).copied()
}

fn to_f32(v: Vector3<f64>) -> [f32; 3] {
    [v.x as f32, v.y as f32, v.z as f32]
}

#[cfg(test)]
mod tests {
    use super::*;
    use farsight_protocol::{
        AnnotationId, AnnotationKind, Intrinsics, ParticipantId, Pose, SessionId, Style,
    };

    fn camera() -> CameraModel {
        CameraModel {
            pose: Pose::IDENTITY,
            intrinsics: Intrinsics {
                fx: 500.0,
                fy: 500.0,
                cx: 320.0,
                cy: 240.0,
                width: 640,
                height: 480,
            },
        }
    }

    fn mark(frame: u64, points: Vec<[f32; 2]>) -> Annotate {
        Annotate {
            session: SessionId(1),
            id: AnnotationId(7),
            author: ParticipantId(2),
            kind: AnnotationKind::Circle,
            frame: FrameSeq(frame),
            points,
            style: Style::default(),
            text: String::new(),
        }
    }

    fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f32>()
            .sqrt()
    }

    /// A wall 2 m ahead on the left half of the picture, 4 m ahead on the right half.
    fn two_walls(_: &CameraModel, pixel: Point2<f64>) -> Option<f64> {
        Some(if pixel.x < 320.0 { 2.0 } else { 4.0 })
    }

    #[test]
    fn marked_points_land_at_their_measured_depth() {
        let mut ring = FrameRing::new(300);
        ring.record(FrameSeq(3), camera());
        // Pixel (220, 240) at depth 2: x = (220 − 320) / 500 · 2 = −0.4.
        let anchor = ring
            .resolve(
                &mark(3, vec![[220.0 / 640.0, 0.5], [420.0 / 640.0, 0.5]]),
                two_walls,
            )
            .expect("a frame is known");
        assert_eq!(anchor.depth, DepthSource::Measured);
        assert!(anchor.remembered);
        assert!(distance(anchor.points[0], [-0.4, 0.0, 2.0]) < 1e-6);
        assert!(distance(anchor.points[1], [0.8, 0.0, 4.0]) < 1e-6);
    }

    #[test]
    fn a_point_without_depth_puts_the_mark_on_the_median_plane() {
        let mut ring = FrameRing::new(300);
        ring.record(FrameSeq(3), camera());
        // Depth only on the right half: the median of what is known is 4 m.
        let right_only = |_: &CameraModel, p: Point2<f64>| (p.x >= 320.0).then_some(4.0);
        let anchor = ring
            .resolve(&mark(3, vec![[0.25, 0.5], [0.75, 0.5]]), right_only)
            .expect("a frame is known");
        assert_eq!(anchor.depth, DepthSource::MedianPlane);
        assert!(anchor.points.iter().all(|p| (p[2] - 4.0).abs() < 1e-6));
    }

    #[test]
    fn a_forgotten_frame_is_anchored_on_the_latest_frames_median_plane() {
        let mut ring = FrameRing::new(300);
        assert_eq!(ring.resolve(&mark(3, vec![[0.5, 0.5]]), two_walls), None);
        ring.record(FrameSeq(3), camera());
        let anchor = ring
            .resolve(&mark(1, vec![[0.5, 0.5]]), two_walls)
            .expect("a frame is known");
        assert_eq!(anchor.depth, DepthSource::MedianPlane);
        assert!(!anchor.remembered);
        // Half the grid sees 2 m and half 4 m; the upper median is 4 m.
        assert!(distance(anchor.points[0], [0.0, 0.0, 4.0]) < 1e-6);
        let nothing = |_: &CameraModel, _: Point2<f64>| None;
        let anchor = ring
            .resolve(&mark(3, vec![[0.5, 0.5]]), nothing)
            .expect("a frame is known");
        assert!((anchor.points[0][2] - DEFAULT_DEPTH_M as f32).abs() < 1e-6);
    }

    #[test]
    fn ring_forgets_the_oldest_frames() {
        let mut ring = FrameRing::new(300);
        let camera = camera();
        for seq in 0..305 {
            ring.record(FrameSeq(seq), camera);
        }
        assert!(ring.get(FrameSeq(4)).is_none());
        assert!(ring.get(FrameSeq(5)).is_some());
        assert!(ring.latest().is_some());
    }

    #[test]
    fn a_ring_of_no_frames_still_keeps_the_latest() {
        let mut ring = FrameRing::new(0);
        ring.record(FrameSeq(1), camera());
        ring.record(FrameSeq(2), camera());
        assert!(ring.get(FrameSeq(1)).is_none());
        assert!(ring.get(FrameSeq(2)).is_some());
    }
}
