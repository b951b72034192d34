//! Newtypes for the numbers outreach passes around, so a call's row id cannot be given where
//! a time is expected (both are `i64` in the database).

use serde::{Deserialize, Serialize};

/// A call's row id in the store (what `/v1/calls/{id}` names), not its SIP Call-ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub i64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An instant as Unix milliseconds, the unit every stored outreach time uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    /// The current wall-clock time.
    pub fn now() -> Millis {
        Millis(jiff::Timestamp::now().as_millisecond())
    }
}
