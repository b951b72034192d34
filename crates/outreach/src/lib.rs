//! Proactive outreach without I/O: usage events and their parsing, per-user-topic features,
//! the hazard model and its training, the calling policy, the scheduler's decisions, the
//! simulator and the report. No SQL and no sockets: callers read and write the store.

pub mod batch;
pub mod calls;
pub mod dial;
pub mod event;
pub mod features;
pub mod ids;
pub mod model;
pub mod policy;
pub mod predict;
pub mod report;
pub mod scheduling;
pub mod simulate;
pub mod train;
