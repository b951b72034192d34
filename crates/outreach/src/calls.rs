//! Call records as the scheduler and the report see them: a call to plan, a call claimed for
//! dialling, and a stored call with its state. The store reads and writes them; nothing here
//! knows SQL.

use serde::Serialize;

use crate::ids::{CallId, Millis, Topic, UserId};

/// States a call that will not be dialled again is left in.
pub const FINAL_STATES: [&str; 7] = [
    "answered",
    "declined",
    "not_found",
    "failed",
    "interrupted",
    "exhausted",
    "holdout",
];

/// A call to insert: a planned one, or a hold-out user's twin that is never dialled.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCall {
    pub user: UserId,
    pub topic: Topic,
    pub probability: f64,
    pub priority: f64,
    pub reasons: String,
    pub holdout: bool,
    pub due_at: Millis,
}

/// A call claimed for dialling, with the Call-ID this attempt uses.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClaimedCall {
    pub id: CallId,
    pub user: UserId,
    pub topic: Topic,
    pub probability: f64,
    pub reasons: String,
    pub attempts: i64,
    pub call_id: String,
    pub phone: Option<String>,
    pub tz: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRecord {
    pub id: CallId,
    pub user: UserId,
    pub topic: Topic,
    pub probability: f64,
    /// Why the call was planned, in words (the prediction's reasons).
    pub reasons: String,
    pub holdout: bool,
    pub state: String,
    pub attempts: i64,
    pub due_at: Millis,
    pub first_dialed_at: Option<Millis>,
    pub call_id: Option<String>,
    pub claimed_by: Option<String>,
}
