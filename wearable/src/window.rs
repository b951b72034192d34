//! The wearer's view in a desktop window, in real time: the simulator's workbench or the
//! camera's picture, with the agents' marks and the HUD.

use bevy::prelude::*;
use bevy::window::{ExitCondition, WindowResolution};

/// The window's title, which also tells how to steer the head.
pub const TITLE: &str = "Farsight glasses simulator (W/A/S/D walk, Q/E down/up, arrows or \
                         right-drag look, P scripted path)";

/// A Bevy app with a window of `size` physical pixels. The binary adds the source (the
/// simulator or the camera), the wearer's view into the window, the stream and the marks.
pub fn window_app(size: UVec2) -> App {
    let mut app = App::new();
    let plugins = DefaultPlugins.set(crate::headless::log_plugin());
    app.add_plugins(plugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: TITLE.to_owned(),
            // Pixels as asked for, whatever the desktop's scale, so screenshots and the
            // stream's camera model agree.
            resolution: WindowResolution::new(size.x, size.y).with_scale_factor_override(1.0),
            resizable: false,
            ..default()
        }),
        exit_condition: ExitCondition::OnPrimaryClosed,
        ..default()
    }));
    app
}
