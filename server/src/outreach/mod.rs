//! Proactive outreach, prediction half: usage events in, per-user-topic features kept up to
//! date as they arrive, a hazard model of "contacts support on this topic within 14 days",
//! and the predictions with their reasons.

pub mod dial;
pub mod event;
pub mod features;
pub mod import;
pub mod ingest;
pub mod model;
pub mod policy;
pub mod predict;
pub mod report;
pub mod scheduler;
pub mod service;
pub mod simulate;
pub mod train;
pub mod webhook;
