//! Steering the simulated head by hand in the window: W/A/S/D walk, Q/E go down and up, the
//! arrow keys or a right-button drag turn and tilt the head. The first key or drag takes the
//! head off its scripted path; P puts it back.

use std::f32::consts::FRAC_PI_2;

use bevy::input::mouse::AccumulatedMouseMotion;
use bevy::prelude::*;

use crate::simulator::{Head, HeadMode};

/// Walking speed, metres per second.
const WALK_M_PER_S: f32 = 0.5;
/// Turning speed with the arrow keys, radians per second.
const TURN_RAD_PER_S: f32 = 1.0;
/// Turning per pixel of a right-button drag.
const DRAG_RAD_PER_PX: f32 = 0.004;
/// The head never tilts quite straight up or down, where yaw is undefined.
const MAX_PITCH: f32 = FRAC_PI_2 - 0.05;

#[derive(Debug)]
pub struct HeadControlPlugin;

impl Plugin for HeadControlPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, steer_head);
    }
}

/// Which way the head should move this frame, from the keys and mouse: the sans-IO part.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Steer {
    /// Forward (+) and right (+) in the horizontal plane, and up (+), each −1..=1.
    pub walk: Vec3,
    /// Turn right (+) and tilt up (+), radians.
    pub turn: Vec2,
}

impl Steer {
    pub fn is_idle(&self) -> bool {
        self.walk == Vec3::ZERO && self.turn == Vec2::ZERO
    }

    /// The head after steering for `seconds`: walking is along the ground whichever way the
    /// head tilts, and the head stays upright.
    pub fn apply(&self, head: Transform, seconds: f32) -> Transform {
        let (yaw, pitch, _) = head.rotation.to_euler(EulerRot::YXZ);
        let yaw = yaw - self.turn.x;
        let pitch = (pitch + self.turn.y).clamp(-MAX_PITCH, MAX_PITCH);
        let rotation = Quat::from_euler(EulerRot::YXZ, yaw, pitch, 0.0);
        let forward = Quat::from_rotation_y(yaw) * Vec3::NEG_Z;
        let right = Quat::from_rotation_y(yaw) * Vec3::X;
        let step = (forward * self.walk.x + right * self.walk.y + Vec3::Y * self.walk.z)
            * WALK_M_PER_S
            * seconds;
        Transform::from_translation(head.translation + step).with_rotation(rotation)
    }
}

fn steer_head(
    keys: Res<ButtonInput<KeyCode>>,
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    time: Res<Time<Real>>,
    mut mode: ResMut<HeadMode>,
    mut head: Single<&mut Transform, With<Head>>,
) {
    if keys.just_pressed(KeyCode::KeyP) {
        *mode = HeadMode::Path;
        return;
    }
    let axis = |plus: KeyCode, minus: KeyCode| {
        f32::from(u8::from(keys.pressed(plus))) - f32::from(u8::from(keys.pressed(minus)))
    };
    let seconds = time.delta_secs();
    let mut steer = Steer {
        walk: Vec3::new(
            axis(KeyCode::KeyW, KeyCode::KeyS),
            axis(KeyCode::KeyD, KeyCode::KeyA),
            axis(KeyCode::KeyE, KeyCode::KeyQ),
        ),
        turn: Vec2::new(
            axis(KeyCode::ArrowRight, KeyCode::ArrowLeft),
            axis(KeyCode::ArrowUp, KeyCode::ArrowDown),
        ) * TURN_RAD_PER_S
            * seconds,
    };
    if buttons.pressed(MouseButton::Right) {
        // Dragging right turns right; dragging up tilts up (screen y grows downwards).
        steer.turn += Vec2::new(motion.delta.x, -motion.delta.y) * DRAG_RAD_PER_PX;
    }
    if steer.is_idle() {
        return;
    }
    *mode = HeadMode::Manual;
    **head = steer.apply(**head, seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looking_north() -> Transform {
        Transform::from_xyz(0.0, 1.5, 0.0).looking_to(Vec3::NEG_Z, Vec3::Y)
    }

    #[test]
    fn walking_forward_follows_the_gaze_along_the_ground() {
        let tilted_down = Steer {
            turn: Vec2::new(0.0, -0.5),
            ..default()
        }
        .apply(looking_north(), 1.0);
        let walked = Steer {
            walk: Vec3::X,
            ..default()
        }
        .apply(tilted_down, 2.0);
        let moved = walked.translation - tilted_down.translation;
        assert!(
            moved.abs_diff_eq(Vec3::new(0.0, 0.0, -1.0), 1e-5),
            "{moved}"
        );
    }

    #[test]
    fn turning_right_then_strafing_right_goes_the_new_way() {
        let turned = Steer {
            turn: Vec2::new(FRAC_PI_2, 0.0),
            ..default()
        }
        .apply(looking_north(), 1.0);
        assert!(
            turned.forward().abs_diff_eq(Vec3::X, 1e-5),
            "{}",
            turned.forward()
        );
        let strafed = Steer {
            walk: Vec3::Y,
            ..default()
        }
        .apply(turned, 1.0);
        let moved = strafed.translation - turned.translation;
        assert!(moved.abs_diff_eq(Vec3::new(0.0, 0.0, 0.5), 1e-5), "{moved}");
    }

    #[test]
    fn the_head_stays_upright_and_never_tilts_past_vertical() {
        let head = Steer {
            turn: Vec2::new(0.3, 10.0),
            ..default()
        }
        .apply(looking_north(), 1.0);
        assert!(
            head.up().y > 0.0,
            "the head flipped over: up is {}",
            head.up()
        );
        assert!(
            head.right().y.abs() < 1e-5,
            "the head rolled: right is {}",
            head.right()
        );
    }
}
