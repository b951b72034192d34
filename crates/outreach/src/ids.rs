//! Newtypes for the identities and units outreach passes around, so a call's row id cannot
//! be given where a time is expected (both are `i64` in the database), nor a topic for a user.

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

    pub fn from_timestamp(ts: jiff::Timestamp) -> Millis {
        Millis(ts.as_millisecond())
    }

    /// `None` outside the range a calendar can name.
    pub fn to_timestamp(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_millisecond(self.0).ok()
    }
}

/// A later (or, negative, earlier) instant by a number of milliseconds.
impl std::ops::Add<i64> for Millis {
    type Output = Millis;
    fn add(self, ms: i64) -> Millis {
        Millis(self.0 + ms)
    }
}

impl std::ops::Sub<i64> for Millis {
    type Output = Millis;
    fn sub(self, ms: i64) -> Millis {
        Millis(self.0 - ms)
    }
}

/// The milliseconds between two instants.
impl std::ops::Sub for Millis {
    type Output = i64;
    fn sub(self, earlier: Millis) -> i64 {
        self.0 - earlier.0
    }
}

/// A platform user, as events, profiles and calls name them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub String);

/// What a need or a call is about (a product area, also the agents' skill), lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Topic(pub String);

macro_rules! text_id {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        // Lets maps keyed by the id be searched with a plain `&str` (same hash as `str`).
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id!(UserId);
text_id!(Topic);
