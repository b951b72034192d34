//! Proactive outreach, wiring half: the pure logic lives in `farsight-outreach` and the SQL in
//! `farsight-store`; here they meet the outside world — ingesting batches and files, training
//! and scoring from the store, the scheduler's loop and the SIP and webhook dialers.

pub mod import;
pub mod ingest;
pub mod report;
pub mod scheduler;
pub mod service;
pub mod webhook;
