//! The wearer's view: what the glasses' display shows. The head camera films the world for
//! the stream; the view is a second camera riding on the head that also sees the agents'
//! marks, so the marks are drawn for the wearer and never burnt into the video agents watch.
//! It renders into the window, or off-screen for screenshots.

use bevy::camera::RenderTarget;
use bevy::camera::visibility::RenderLayers;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::render_resource::TextureFormat;
use bevy::render::view::Msaa;

use crate::simulator::{HEAD_VFOV_DEGREES, Head};

/// The render layer of agents' marks and labels: the view sees it, the head camera does not.
pub const MARKS_LAYER: usize = 1;

/// Where the view is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewTarget {
    /// The primary window.
    Window,
    /// An off-screen image of this size, for screenshots.
    Image(UVec2),
}

#[derive(Debug, Clone)]
pub struct ViewPlugin {
    pub target: ViewTarget,
}

impl Plugin for ViewPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ViewConfig(self.target))
            .add_systems(PostStartup, spawn_view);
    }
}

#[derive(Resource, Debug)]
struct ViewConfig(ViewTarget);

/// The camera of the wearer's view; a child of the head, so it sees what the head sees.
#[derive(Component, Debug)]
pub struct WearerView;

/// The image the view renders into when it is off-screen.
#[derive(Resource, Debug)]
pub struct ViewImage {
    pub image: Handle<Image>,
    pub size: UVec2,
}

fn spawn_view(
    mut commands: Commands,
    config: Res<ViewConfig>,
    mut images: ResMut<Assets<Image>>,
    head: Single<Entity, With<Head>>,
) {
    let target = match config.0 {
        ViewTarget::Window => RenderTarget::default(),
        ViewTarget::Image(size) => {
            let image = images.add(Image::new_target_texture(
                size.x,
                size.y,
                TextureFormat::Rgba8UnormSrgb,
                None,
            ));
            commands.insert_resource(ViewImage {
                image: image.clone(),
                size,
            });
            RenderTarget::Image(image.into())
        }
    };
    let view = commands
        .spawn((
            Name::new("wearer's view"),
            WearerView,
            Camera3d::default(),
            Camera {
                // After the head camera, which has the frame's render to itself.
                order: 1,
                ..default()
            },
            target,
            Projection::Perspective(PerspectiveProjection {
                fov: HEAD_VFOV_DEGREES.to_radians(),
                ..default()
            }),
            RenderLayers::from_layers(&[0, MARKS_LAYER]),
            Tonemapping::None,
            Msaa::Off,
            Transform::IDENTITY,
        ))
        .id();
    commands.entity(*head).add_child(view);
}
