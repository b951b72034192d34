//! The pinhole camera model shared by the wearable (anchoring) and the console (re-projection).
//!
//! Conventions: the camera frame is x right, y down, z forward (as in OpenCV); a `Pose` is
//! world-from-camera; pixel (0, 0) is the top-left corner of the top-left pixel, so the centre
//! of that pixel is (0.5, 0.5). Normalised image coordinates are pixels divided by the image
//! size, (0, 0) top-left to (1, 1) bottom-right, independent of resolution.

use nalgebra::{Isometry3, Point2, Point3, Translation3, UnitQuaternion, Vector3};

/// World-from-camera rigid transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    pub translation: Vector3<f64>,
    pub rotation: UnitQuaternion<f64>,
}

impl Default for Pose {
    fn default() -> Self {
        Self::IDENTITY
    }
}

impl Pose {
    pub const IDENTITY: Pose = Pose {
        translation: Vector3::new(0.0, 0.0, 0.0),
        rotation: UnitQuaternion::new_unchecked(nalgebra::Quaternion::new(1.0, 0.0, 0.0, 0.0)),
    };

    pub fn new(translation: Vector3<f64>, rotation: UnitQuaternion<f64>) -> Self {
        Self {
            translation,
            rotation,
        }
    }

    /// A camera at `eye` looking at `target`, with image "up" towards `up` (camera y is down).
    pub fn look_at(eye: Point3<f64>, target: Point3<f64>, up: Vector3<f64>) -> Self {
        let forward = (target - eye).normalize();
        let right = forward.cross(&-up).normalize();
        let down = forward.cross(&right);
        let basis = nalgebra::Matrix3::from_columns(&[right, down, forward]);
        let rotation = UnitQuaternion::from_matrix(&basis);
        Self::new(eye.coords, rotation)
    }

    pub fn isometry(&self) -> Isometry3<f64> {
        Isometry3::from_parts(Translation3::from(self.translation), self.rotation)
    }

    pub fn camera_to_world(&self, p: &Point3<f64>) -> Point3<f64> {
        self.isometry() * p
    }

    pub fn world_to_camera(&self, p: &Point3<f64>) -> Point3<f64> {
        self.isometry().inverse_transform_point(p)
    }

    /// Interpolates between two poses: linear in position, spherical in rotation; `t` in [0, 1].
    pub fn interpolate(&self, other: &Pose, t: f64) -> Pose {
        let t = t.clamp(0.0, 1.0);
        let rotation = self
            .rotation
            .try_slerp(&other.rotation, t, 1e-9)
            .unwrap_or(if t < 0.5 {
                self.rotation
            } else {
                other.rotation
            });
        Pose::new(self.translation.lerp(&other.translation, t), rotation)
    }

    /// The pose at time `at` from timestamped samples sorted by time: interpolated between
    /// the two samples around `at`, or the nearest end when `at` lies outside them.
    pub fn at_time(samples: &[(u64, Pose)], at: u64) -> Option<Pose> {
        let after = samples.partition_point(|(ts, _)| *ts <= at);
        match (
            after.checked_sub(1).map(|i| samples[i]),
            samples.get(after).copied(),
        ) {
            (Some((t0, p0)), Some((t1, p1))) => {
                let span = (t1 - t0) as f64;
                Some(p0.interpolate(&p1, (at - t0) as f64 / span))
            }
            (Some((_, p)), None) | (None, Some((_, p))) => Some(p),
            (None, None) => None,
        }
    }
}

/// Pinhole intrinsics in pixels for an image of `width` × `height`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intrinsics {
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
    pub width: u32,
    pub height: u32,
}

impl Intrinsics {
    /// Square pixels, principal point in the centre, horizontal field of view `hfov` radians.
    pub fn from_hfov(width: u32, height: u32, hfov: f64) -> Self {
        let f = width as f64 / 2.0 / (hfov / 2.0).tan();
        Self {
            fx: f,
            fy: f,
            cx: width as f64 / 2.0,
            cy: height as f64 / 2.0,
            width,
            height,
        }
    }

    /// The same camera at another resolution (the encoder ladder rescales the picture).
    pub fn scaled_to(&self, width: u32, height: u32) -> Self {
        let sx = width as f64 / self.width as f64;
        let sy = height as f64 / self.height as f64;
        Self {
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: self.cx * sx,
            cy: self.cy * sy,
            width,
            height,
        }
    }

    pub fn to_normalised(&self, pixel: Point2<f64>) -> Point2<f64> {
        Point2::new(pixel.x / self.width as f64, pixel.y / self.height as f64)
    }

    pub fn from_normalised(&self, normalised: Point2<f64>) -> Point2<f64> {
        Point2::new(
            normalised.x * self.width as f64,
            normalised.y * self.height as f64,
        )
    }
}

/// A posed camera: what the wearable records for every frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CameraModel {
    pub pose: Pose,
    pub intrinsics: Intrinsics,
}

impl CameraModel {
    /// The pixel where a world point appears, or `None` when it lies behind the camera.
    pub fn project(&self, world: &Point3<f64>) -> Option<Point2<f64>> {
        let c = self.pose.world_to_camera(world);
        if c.z <= 1e-9 {
            return None;
        }
        let k = &self.intrinsics;
        Some(Point2::new(
            k.fx * c.x / c.z + k.cx,
            k.fy * c.y / c.z + k.cy,
        ))
    }

    /// The world point seen at `pixel` with `depth` metres along the optical axis (z, not ray
    /// length — the convention of depth buffers).
    pub fn unproject(&self, pixel: Point2<f64>, depth: f64) -> Point3<f64> {
        let k = &self.intrinsics;
        let c = Point3::new(
            (pixel.x - k.cx) / k.fx * depth,
            (pixel.y - k.cy) / k.fy * depth,
            depth,
        );
        self.pose.camera_to_world(&c)
    }

    /// Depth along the optical axis of a world point, for the median-plane fallback.
    pub fn depth_of(&self, world: &Point3<f64>) -> f64 {
        self.pose.world_to_camera(world).z
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::FRAC_PI_2;

    fn camera_at_origin() -> CameraModel {
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

    #[test]
    fn projects_hand_computed_point() {
        // x = 500 * 0.2 / 2 + 320 = 370, y = 500 * -0.4 / 2 + 240 = 140.
        let cam = camera_at_origin();
        let p = cam.project(&Point3::new(0.2, -0.4, 2.0)).expect("in front");
        assert!(
            (p.x - 370.0).abs() < 1e-9 && (p.y - 140.0).abs() < 1e-9,
            "{p}"
        );
    }

    #[test]
    fn point_behind_camera_does_not_project() {
        assert_eq!(
            camera_at_origin().project(&Point3::new(0.0, 0.0, -1.0)),
            None
        );
    }

    #[test]
    fn unproject_inverts_project_for_a_turned_camera() {
        let mut cam = camera_at_origin();
        cam.pose = Pose::new(
            Vector3::new(0.3, -1.2, 0.5),
            UnitQuaternion::from_euler_angles(0.1, FRAC_PI_2, -0.3),
        );
        let world = cam.unproject(Point2::new(100.0, 400.0), 1.5);
        let back = cam.project(&world).expect("in front");
        assert!((back.x - 100.0).abs() < 1e-9 && (back.y - 400.0).abs() < 1e-9);
        assert!((cam.depth_of(&world) - 1.5).abs() < 1e-9);
    }

    #[test]
    fn camera_turned_about_y_looks_along_world_x() {
        // R_y(90°) (0, 0, 1) = (sin 90°, 0, cos 90°) = (1, 0, 0): forward becomes world +x.
        let mut cam = camera_at_origin();
        cam.pose.rotation = UnitQuaternion::from_axis_angle(&Vector3::y_axis(), FRAC_PI_2);
        let p = cam.project(&Point3::new(1.0, 0.0, 0.0)).expect("ahead");
        assert!((p.x - 320.0).abs() < 1e-9 && (p.y - 240.0).abs() < 1e-9);
    }

    #[test]
    fn look_at_centres_the_target() {
        let mut cam = camera_at_origin();
        cam.pose = Pose::look_at(
            Point3::new(1.0, -0.5, -2.0),
            Point3::new(0.1, 0.2, 0.3),
            Vector3::new(0.0, -1.0, 0.0),
        );
        let p = cam.project(&Point3::new(0.1, 0.2, 0.3)).expect("ahead");
        assert!(
            (p.x - 320.0).abs() < 1e-9 && (p.y - 240.0).abs() < 1e-9,
            "{p}"
        );
    }

    #[test]
    fn interpolation_halfway_between_poses() {
        let a = Pose::IDENTITY;
        let b = Pose::new(
            Vector3::new(2.0, 0.0, 0.0),
            UnitQuaternion::from_axis_angle(&Vector3::z_axis(), FRAC_PI_2),
        );
        let mid = a.interpolate(&b, 0.5);
        assert!((mid.translation - Vector3::new(1.0, 0.0, 0.0)).norm() < 1e-12);
        assert!((mid.rotation.angle() - FRAC_PI_2 / 2.0).abs() < 1e-12);
    }

    #[test]
    fn pose_at_time_interpolates_and_clamps() {
        let b = Pose::new(Vector3::new(1.0, 0.0, 0.0), UnitQuaternion::identity());
        let samples = [(100, Pose::IDENTITY), (200, b)];
        let at = |t| Pose::at_time(&samples, t).expect("samples").translation.x;
        assert!((at(150) - 0.5).abs() < 1e-12);
        assert_eq!(at(50), 0.0);
        assert_eq!(at(300), 1.0);
        assert_eq!(at(200), 1.0);
        assert_eq!(Pose::at_time(&[], 5), None);
    }

    #[test]
    fn normalised_coordinates_survive_rescaling() {
        let k = camera_at_origin().intrinsics;
        let small = k.scaled_to(320, 240);
        let n = k.to_normalised(Point2::new(160.0, 120.0));
        let p = small.from_normalised(n);
        assert!((p.x - 80.0).abs() < 1e-12 && (p.y - 60.0).abs() < 1e-12);
        assert_eq!(small.fx, 250.0);
    }
}
