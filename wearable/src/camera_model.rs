//! The bridge from a Bevy camera to the protocol's `CameraModel`, so every frame the wearable
//! sends carries the pose and intrinsics the console and the anchor resolver expect.
//!
//! Bevy's camera looks down −Z with +Y up; the protocol's camera frame is OpenCV's (+X right,
//! +Y down, +Z forward). The two differ by a half turn about X, applied here and nowhere else.

use bevy::camera::{PerspectiveProjection, Projection};
use bevy::math::{UVec2, Vec3};
use bevy::transform::components::GlobalTransform;
use farsight_protocol::{CameraModel, Intrinsics, Pose};
use nalgebra::{Point3, Quaternion, UnitQuaternion, Vector3};

/// Bevy-camera-from-OpenCV-camera: a half turn about X flips Y (up to down) and Z (backward
/// to forward).
fn bevy_from_opencv() -> UnitQuaternion<f64> {
    UnitQuaternion::from_axis_angle(&Vector3::x_axis(), std::f64::consts::PI)
}

/// The protocol's camera model of a Bevy perspective camera rendering `size` pixels.
///
/// Bevy's `PerspectiveProjection::fov` is the vertical field of view and pixels are square,
/// so `fx = fy`; the principal point is the image centre.
pub fn camera_model(
    transform: &GlobalTransform,
    projection: &PerspectiveProjection,
    size: UVec2,
) -> CameraModel {
    let (_, rotation, translation) = transform.to_scale_rotation_translation();
    let world_from_bevy = UnitQuaternion::from_quaternion(Quaternion::new(
        f64::from(rotation.w),
        f64::from(rotation.x),
        f64::from(rotation.y),
        f64::from(rotation.z),
    ));
    let (width, height) = (size.x, size.y);
    let f = f64::from(height) / 2.0 / (f64::from(projection.fov) / 2.0).tan();
    CameraModel {
        pose: Pose::new(
            to_nalgebra(translation).coords,
            world_from_bevy * bevy_from_opencv(),
        ),
        intrinsics: Intrinsics {
            fx: f,
            fy: f,
            cx: f64::from(width) / 2.0,
            cy: f64::from(height) / 2.0,
            width,
            height,
        },
    }
}

/// The perspective projection inside a Bevy `Projection`, which is the only kind the
/// wearable renders with.
pub fn perspective(projection: &Projection) -> Option<&PerspectiveProjection> {
    match projection {
        Projection::Perspective(p) => Some(p),
        _ => None,
    }
}

pub fn to_nalgebra(v: Vec3) -> Point3<f64> {
    Point3::new(f64::from(v.x), f64::from(v.y), f64::from(v.z))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::camera::{Camera, CameraProjection, RenderTargetInfo};
    use bevy::math::{Quat, Vec2};
    use bevy::transform::components::Transform;

    const SIZE: UVec2 = UVec2::new(1280, 720);

    /// A Bevy camera as `camera_system` leaves it once it knows its target's size.
    fn bevy_camera(projection: &PerspectiveProjection) -> Camera {
        let mut camera = Camera::default();
        camera.computed.clip_from_view = projection.get_clip_from_view();
        camera.computed.target_info = Some(RenderTargetInfo {
            physical_size: SIZE,
            scale_factor: 1.0,
        });
        camera
    }

    fn projection(vfov_degrees: f32) -> PerspectiveProjection {
        let mut projection = PerspectiveProjection {
            fov: vfov_degrees.to_radians(),
            ..Default::default()
        };
        projection.update(SIZE.x as f32, SIZE.y as f32);
        projection
    }

    fn assert_same_pixel(transform: Transform, projection: &PerspectiveProjection, world: Vec3) {
        let global = GlobalTransform::from(transform);
        let expected: Vec2 = bevy_camera(projection)
            .world_to_viewport(&global, world)
            .expect("the point is in view");
        let got = camera_model(&global, projection, SIZE)
            .project(&to_nalgebra(world))
            .expect("the point is in front of the camera");
        let (dx, dy) = (got.x - f64::from(expected.x), got.y - f64::from(expected.y));
        assert!(
            dx.abs() < 0.5 && dy.abs() < 0.5,
            "camera at {transform:?}: CameraModel puts {world} at {got}, Bevy at {expected}"
        );
    }

    #[test]
    fn projection_matches_bevy_world_to_viewport_for_several_poses() {
        let poses = [
            Transform::IDENTITY,
            Transform::from_xyz(0.3, 1.2, 0.8).looking_at(Vec3::new(0.0, 0.9, 0.0), Vec3::Y),
            Transform::from_xyz(-0.5, 1.4, 0.6).looking_at(Vec3::new(0.1, 1.0, -0.1), Vec3::Y),
            Transform::from_xyz(2.0, -1.0, 3.0).with_rotation(Quat::from_euler(
                bevy::math::EulerRot::YXZ,
                0.7,
                -0.3,
                0.2,
            )),
        ];
        for vfov in [45.0, 60.0, 75.0] {
            let projection = projection(vfov);
            for pose in poses {
                for offset in [
                    Vec3::new(0.0, 0.0, -1.0),
                    Vec3::new(0.2, -0.1, -1.5),
                    Vec3::new(-0.3, 0.25, -0.9),
                    Vec3::new(0.05, 0.3, -2.5),
                ] {
                    // Points given in the Bevy camera's own frame, so they lie in view.
                    assert_same_pixel(pose, &projection, pose.transform_point(offset));
                }
            }
        }
    }

    #[test]
    fn camera_axes_follow_opencv() {
        // A Bevy camera at the origin looks down −Z: a point ahead and above appears above the
        // centre, one to the right to the right of it.
        let projection = projection(60.0);
        let model = camera_model(&GlobalTransform::IDENTITY, &projection, SIZE);
        let ahead = model
            .project(&Point3::new(0.0, 0.0, -2.0))
            .expect("in front");
        assert!((ahead.x - 640.0).abs() < 1e-6 && (ahead.y - 360.0).abs() < 1e-6);
        let above_right = model
            .project(&Point3::new(0.5, 0.5, -2.0))
            .expect("in front");
        assert!(
            above_right.x > 640.0 && above_right.y < 360.0,
            "{above_right}"
        );
        assert_eq!(model.project(&Point3::new(0.0, 0.0, 2.0)), None);
    }

    #[test]
    fn focal_length_comes_from_the_vertical_field_of_view() {
        // 90° vertical: the top edge of a 720-pixel image is 45° up, so f = 360 pixels.
        let model = camera_model(&GlobalTransform::IDENTITY, &projection(90.0), SIZE);
        let k = model.intrinsics;
        assert!(
            (k.fy - 360.0).abs() < 1e-3 && (k.fx - 360.0).abs() < 1e-3,
            "{k:?}"
        );
        assert_eq!((k.cx, k.cy, k.width, k.height), (640.0, 360.0, 1280, 720));
    }
}
