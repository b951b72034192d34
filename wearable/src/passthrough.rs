//! The glasses with a real camera and no tracking: the head is the camera's fixed pose, and
//! the wearer's view shows the camera's picture behind the agents' marks, with the camera's
//! assumed field of view so a mark lands over what was marked.

use bevy::prelude::*;

use crate::camera_source::fixed_camera_view;
use crate::simulator::Head;
use crate::video_background::VideoBackground;
use crate::view::WearerView;

#[derive(Debug, Clone)]
pub struct PassthroughPlugin {
    /// The camera's picture size.
    pub size: UVec2,
}

impl Plugin for PassthroughPlugin {
    fn build(&self, app: &mut App) {
        let (pose, lens) = fixed_camera_view(self.size);
        app.add_systems(Startup, move |mut commands: Commands| {
            commands.spawn((Name::new("head"), Head, pose, Visibility::default()));
        })
        .add_observer(move |view: On<Add, WearerView>, mut commands: Commands| {
            commands
                .entity(view.entity)
                .insert((Projection::Perspective(lens.clone()), VideoBackground));
        });
    }
}
