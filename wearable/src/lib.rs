//! `farsight-wearable`: the client for AR glasses, as Bevy plugins. Its source is the desktop
//! simulator (a workbench seen from a moving head) or a real camera; every frame goes to the
//! relay as H.264 with its pose and intrinsics, agents' marks come back and are anchored in
//! the world, and the wearer's view shows them with a HUD, in a window or off-screen.

pub mod anchor;
pub mod camera_model;
pub mod camera_source;
pub mod capture;
pub mod encoder;
pub mod head_control;
pub mod head_path;
pub mod headless;
pub mod hud;
pub mod link;
pub mod marks;
pub mod passthrough;
pub mod shaders;
pub mod simulator;
pub mod snapshot;
pub mod stroke;
pub mod video_background;
pub mod view;
pub mod window;
pub mod workbench;
