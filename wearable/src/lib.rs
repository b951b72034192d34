//! `farsight-wearable`: the client for AR glasses, as Bevy plugins. Today its camera is the
//! desktop simulator — a workbench seen from a scripted head path, rendered off-screen —
//! which either saves one frame with its camera model or publishes every frame to the relay
//! as H.264 with each frame's pose and intrinsics, anchoring agents' marks in the scene.

pub mod anchor;
pub mod camera_model;
pub mod camera_source;
pub mod capture;
pub mod encoder;
pub mod head_control;
pub mod head_path;
pub mod headless;
pub mod hud;
pub mod ladder;
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
