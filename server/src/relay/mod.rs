//! The media relay: live sessions, their groups of pictures and how each watcher gets them.

pub mod forward;
pub mod group;
pub mod ingest;
pub mod schedule;
pub mod session;

pub use group::{Group, GroupObject};
pub use session::{Member, Relay, SessionHub};
