//! What dialling a call can come to, and how each outcome maps to the call's next state.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The customer answered and was joined with the agent.
    Answered,
    /// Handed to a contact-center platform, which reports the outcome later.
    Placed,
    Busy,
    NoAnswer,
    Declined,
    NotFound,
    /// The far end failed (5xx) or the dialer could not reach it: worth another try.
    Unreachable(String),
    /// Refused for good (authentication, a rejected request).
    Failed(String),
}

impl Outcome {
    /// The call's state after this outcome, when no retry follows.
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Placed => "placed",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Declined => "declined",
            Outcome::NotFound => "not_found",
            Outcome::Unreachable(_) => "exhausted",
            Outcome::Failed(_) => "failed",
        }
    }

    /// Busy, no answer and transient failures are tried again while attempts remain;
    /// a person who declined, a wrong number or a refusal are not.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Outcome::Busy | Outcome::NoAnswer | Outcome::Unreachable(_)
        )
    }

    pub fn detail(&self) -> String {
        match self {
            Outcome::Unreachable(why) | Outcome::Failed(why) => format!("{}: {why}", self.state()),
            other => other.state().to_string(),
        }
    }
}
