//! The desktop stand-in for the glasses: a lit workbench with a device to fix on it, seen by a
//! head (the camera) that follows a scripted path. The path is a function of `Time`, so a
//! headless run that advances time by a fixed step renders the same frames every time.

use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::light::{CascadeShadowConfigBuilder, DirectionalLightShadowMap};
use bevy::prelude::*;
use bevy::render::view::Msaa;

use crate::head_path::HeadPath;
use crate::workbench::{DEVICE_CENTRE, spawn_workbench};

/// Vertical field of view of the simulated glasses' camera.
pub const HEAD_VFOV_DEGREES: f32 = 60.0;

/// The head's camera `seconds` along its path, rendering `size` pixels, in the protocol's
/// camera model: what a frame rendered then carries.
pub fn head_camera(seconds: f32, size: UVec2) -> farsight_protocol::CameraModel {
    let projection = PerspectiveProjection {
        fov: HEAD_VFOV_DEGREES.to_radians(),
        ..default()
    };
    let head = GlobalTransform::from(HeadPath::default().pose_at(seconds));
    crate::camera_model::camera_model(&head, &projection, size)
}

/// How far from the head shadows are drawn, and the shadow map's size: the bench and its
/// surroundings, sharp enough at arm's length.
const SHADOW_DISTANCE_M: f32 = 4.0;
const SHADOW_MAP_PX: usize = 1024;

#[derive(Debug)]
pub struct SimulatorPlugin;

impl Plugin for SimulatorPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<HeadPath>()
            .init_resource::<HeadMode>()
            .insert_resource(ClearColor(Color::srgb(0.12, 0.13, 0.15)))
            .insert_resource(DirectionalLightShadowMap {
                size: SHADOW_MAP_PX,
            })
            .add_systems(Startup, (spawn_workbench, spawn_light, spawn_head))
            .add_systems(
                Update,
                follow_head_path.run_if(resource_equals(HeadMode::Path)),
            );
    }
}

/// The simulated wearer's head; its camera is the glasses' camera.
#[derive(Component, Debug)]
pub struct Head;

/// Whether the head follows its scripted path or is steered by hand (`head_control`).
#[derive(Resource, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadMode {
    #[default]
    Path,
    Manual,
}

/// The sun over the bench, casting the shadows that give the scene depth.
fn spawn_light(mut commands: Commands) {
    commands.spawn((
        Name::new("sun"),
        DirectionalLight {
            illuminance: 3000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        // The whole scene is within a few metres: one cascade covers it, where the default
        // four (out to 150 m) would cost four shadow passes a frame for nothing.
        CascadeShadowConfigBuilder {
            num_cascades: 1,
            first_cascade_far_bound: SHADOW_DISTANCE_M,
            maximum_distance: SHADOW_DISTANCE_M,
            ..default()
        }
        .build(),
        Transform::from_xyz(0.8, 2.5, 1.5).looking_at(DEVICE_CENTRE, Vec3::Y),
    ));
}

fn spawn_head(mut commands: Commands, path: Res<HeadPath>) {
    commands.spawn((
        Name::new("head"),
        Head,
        Camera3d::default(),
        // It films only once something takes its pictures (`OffScreenPlugin`).
        Camera {
            is_active: false,
            ..default()
        },
        Projection::Perspective(PerspectiveProjection {
            fov: HEAD_VFOV_DEGREES.to_radians(),
            ..default()
        }),
        // Colours reach the picture as the materials give them: no tone curve, and no lookup
        // tables to ship.
        Tonemapping::None,
        Msaa::Off,
        path.pose_at(0.0),
    ));
}

fn follow_head_path(
    time: Res<Time>,
    path: Res<HeadPath>,
    mut head: Single<&mut Transform, With<Head>>,
) {
    **head = path.pose_at(time.elapsed_secs());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera_model::{camera_model, to_nalgebra};
    use crate::workbench::KNOB_POSITION;
    use bevy::camera::CameraProjection;

    #[test]
    fn head_path_keeps_the_knob_in_view() {
        let size = UVec2::new(640, 360);
        let mut projection = PerspectiveProjection {
            fov: HEAD_VFOV_DEGREES.to_radians(),
            ..default()
        };
        projection.update(size.x as f32, size.y as f32);
        let path = HeadPath::default();
        for frame in 0..30 * 20 {
            let pose = GlobalTransform::from(path.pose_at(frame as f32 / 30.0));
            let pixel = camera_model(&pose, &projection, size)
                .project(&to_nalgebra(KNOB_POSITION))
                .expect("the knob is in front of the head");
            assert!(
                (40.0..600.0).contains(&pixel.x) && (40.0..320.0).contains(&pixel.y),
                "frame {frame}: knob at {pixel}"
            );
        }
    }

    #[test]
    fn head_path_moves_and_repeats() {
        let path = HeadPath::default();
        let start = path.pose_at(0.0).translation;
        assert!(path.pose_at(2.0).translation.distance(start) > 0.2);
        // Both periods divide 40 s.
        assert!(path.pose_at(40.0).translation.distance(start) < 1e-4);
    }
}
