//! Per user and topic features, updated one event at a time with no rescans.
//!
//! Decayed counts are kept relative to the newest event seen (`reference_ms`), so an event
//! that arrives late adds exactly what it would have added in order: the state after any
//! interleaving of the same events is the same (up to rounding).

use serde::{Deserialize, Serialize};

use crate::event::{EventKind, Tier};

pub const DAY_MS: f64 = 86_400_000.0;
/// Half-lives of the decayed counts, in days.
pub const HALF_LIVES: [f64; 3] = [1.0, 7.0, 28.0];
/// Recency features stop growing here, so a long-quiet pair is not an outlier.
const RECENCY_CAP_DAYS: f64 = 90.0;

/// What an event tells about a user's need on its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Doc = 0,
    Error = 1,
    Use = 2,
    Contact = 3,
    Outreach = 4,
}

const SIGNALS: usize = 5;

impl Signal {
    pub fn of(kind: EventKind) -> Option<Signal> {
        match kind {
            EventKind::DocView => Some(Signal::Doc),
            EventKind::ApiError => Some(Signal::Error),
            EventKind::FeatureUse => Some(Signal::Use),
            EventKind::SupportContact => Some(Signal::Contact),
            EventKind::OutreachCall => Some(Signal::Outreach),
            // The SDK version belongs to the user, not to a topic.
            EventKind::SdkVersion => None,
        }
    }
}

/// The running state of one (user, topic) pair.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    /// Newest event time seen; decayed values are as of this instant.
    pub reference_ms: i64,
    /// `decayed[signal][h]`: sum over events of 2^(-(reference - t) / half-life h).
    pub decayed: [[f64; 3]; SIGNALS],
    /// Newest event time per signal.
    pub last_ms: [Option<i64>; SIGNALS],
    pub events: u64,
}

fn decay(dt_ms: i64, half_life_days: f64) -> f64 {
    (-(dt_ms as f64) / (half_life_days * DAY_MS)).exp2()
}

impl TopicState {
    pub fn observe(&mut self, signal: Signal, ts_ms: i64) {
        if self.events == 0 {
            self.reference_ms = ts_ms;
        } else if ts_ms > self.reference_ms {
            let dt = ts_ms - self.reference_ms;
            for per_signal in &mut self.decayed {
                for (v, h) in per_signal.iter_mut().zip(HALF_LIVES) {
                    *v *= decay(dt, h);
                }
            }
            self.reference_ms = ts_ms;
        }
        let age = self.reference_ms - ts_ms;
        for (v, h) in self.decayed[signal as usize].iter_mut().zip(HALF_LIVES) {
            *v += decay(age, h);
        }
        let last = &mut self.last_ms[signal as usize];
        *last = Some(last.map_or(ts_ms, |l| l.max(ts_ms)));
        self.events += 1;
    }

    /// A compact text form for storage: 22 space-separated numbers (reference, events, the
    /// decayed counts, the last times with `-` for none). Floats print in their shortest
    /// exact form, so decoding gives back the same state bit for bit.
    pub fn encode(&self) -> String {
        use std::fmt::Write;
        let mut out = format!("{} {}", self.reference_ms, self.events);
        for v in self.decayed.iter().flatten() {
            let _ = write!(out, " {v:e}");
        }
        for t in &self.last_ms {
            match t {
                Some(t) => {
                    let _ = write!(out, " {t}");
                }
                None => out.push_str(" -"),
            }
        }
        out
    }

    pub fn decode(text: &str) -> Option<TopicState> {
        let mut parts = text.split(' ');
        let mut state = TopicState {
            reference_ms: parts.next()?.parse().ok()?,
            events: parts.next()?.parse().ok()?,
            ..TopicState::default()
        };
        for v in state.decayed.iter_mut().flatten() {
            *v = parts.next()?.parse().ok()?;
        }
        for t in &mut state.last_ms {
            *t = match parts.next()? {
                "-" => None,
                n => Some(n.parse().ok()?),
            };
        }
        parts.next().is_none().then_some(state)
    }

    /// The decayed count of `signal` with half-life index `h`, as of `at_ms`.
    pub fn decayed_at(&self, signal: Signal, h: usize, at_ms: i64) -> f64 {
        let v = self.decayed[signal as usize][h];
        if at_ms >= self.reference_ms {
            v * decay(at_ms - self.reference_ms, HALF_LIVES[h])
        } else {
            // Asked about the past: only valid when no later events were observed, which
            // the dataset builder guarantees by replaying in time order.
            v
        }
    }

    fn days_since(&self, signal: Signal, at_ms: i64) -> f64 {
        match self.last_ms[signal as usize] {
            Some(t) => ((at_ms - t) as f64 / DAY_MS).clamp(0.0, RECENCY_CAP_DAYS),
            None => RECENCY_CAP_DAYS,
        }
    }
}

/// What the model sees about the user beyond the topic.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UserContext {
    pub tier: Tier,
    /// Minor releases behind the newest SDK seen on the platform.
    pub sdk_lag: f64,
    /// When the user's SDK version last changed, if ever seen to.
    pub sdk_upgraded_ms: Option<i64>,
}

impl UserContext {
    /// Days since the last SDK upgrade, capped: fresh upgrades break things.
    fn days_since_upgrade(&self, at_ms: i64) -> f64 {
        self.sdk_upgraded_ms.map_or(RECENCY_CAP_DAYS, |t| {
            ((at_ms - t) as f64 / DAY_MS).clamp(0.0, RECENCY_CAP_DAYS)
        })
    }
}

/// Names of the feature vector's columns, in order.
pub const FEATURE_NAMES: [&str; 17] = [
    "doc_views_1d",
    "doc_views_7d",
    "doc_views_28d",
    "api_errors_1d",
    "api_errors_7d",
    "api_errors_28d",
    "feature_use_7d",
    "feature_use_28d",
    "support_contacts_28d",
    "outreach_calls_28d",
    "days_since_doc_view",
    "days_since_api_error",
    "error_rate_7d",
    "doc_views_rising",
    "sdk_minor_versions_behind",
    "days_since_sdk_upgrade",
    "plan_tier",
];

pub const FEATURES: usize = FEATURE_NAMES.len();

/// The feature vector of a pair as of `at_ms`.
pub fn vector(state: &TopicState, user: &UserContext, at_ms: i64) -> [f64; FEATURES] {
    let d = |s, h| state.decayed_at(s, h, at_ms);
    let (doc1, doc7, doc28) = (d(Signal::Doc, 0), d(Signal::Doc, 1), d(Signal::Doc, 2));
    let (err1, err7, err28) = (
        d(Signal::Error, 0),
        d(Signal::Error, 1),
        d(Signal::Error, 2),
    );
    let (use7, use28) = (d(Signal::Use, 1), d(Signal::Use, 2));
    [
        doc1,
        doc7,
        doc28,
        err1,
        err7,
        err28,
        use7,
        use28,
        d(Signal::Contact, 2),
        d(Signal::Outreach, 2),
        state.days_since(Signal::Doc, at_ms),
        state.days_since(Signal::Error, at_ms),
        err7 / (err7 + use7 + 1.0),
        // Reading faster now than over the past week: trouble is brewing.
        doc1 - doc7 / 7.0,
        user.sdk_lag,
        user.days_since_upgrade(at_ms),
        user.tier.rank(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_decays_to_half_after_one_half_life() {
        let mut s = TopicState::default();
        s.observe(Signal::Doc, 0);
        let week = (7.0 * DAY_MS) as i64;
        assert!((s.decayed_at(Signal::Doc, 1, week) - 0.5).abs() < 1e-12);
        assert!((s.decayed_at(Signal::Doc, 0, week) - 0.5f64.powi(7)).abs() < 1e-12);
    }

    #[test]
    fn late_event_adds_what_it_would_have_in_order() {
        let (t1, t2) = (1_000_000, 1_000_000 + 3 * DAY_MS as i64);
        let mut in_order = TopicState::default();
        in_order.observe(Signal::Error, t1);
        in_order.observe(Signal::Error, t2);
        let mut late = TopicState::default();
        late.observe(Signal::Error, t2);
        late.observe(Signal::Error, t1);
        for h in 0..3 {
            let (a, b) = (in_order.decayed[1][h], late.decayed[1][h]);
            assert!((a - b).abs() < 1e-12, "half-life {h}: {a} vs {b}");
        }
        assert_eq!(in_order.last_ms, late.last_ms);
    }

    #[test]
    fn stored_form_round_trips_exactly() {
        let mut s = TopicState::default();
        for (i, signal) in [Signal::Doc, Signal::Error, Signal::Doc, Signal::Contact]
            .into_iter()
            .enumerate()
        {
            s.observe(signal, 1_790_000_000_123 + i as i64 * 40_000_000 * 24);
        }
        let text = s.encode();
        assert_eq!(TopicState::decode(&text), Some(s));
        assert_eq!(TopicState::decode("1 2 3"), None);
        assert_eq!(TopicState::decode(&format!("{text} 9")), None);
    }

    #[test]
    fn vector_reports_recency_rate_and_context() {
        let mut s = TopicState::default();
        s.observe(Signal::Error, 0);
        s.observe(Signal::Use, 0);
        let user = UserContext {
            tier: Tier::Gold,
            sdk_lag: 2.0,
            sdk_upgraded_ms: Some(-(DAY_MS as i64)),
        };
        let v = vector(&s, &user, 2 * DAY_MS as i64);
        assert_eq!(v[10], RECENCY_CAP_DAYS, "never read docs");
        assert!((v[11] - 2.0).abs() < 1e-12, "two days since the error");
        assert!(v[12] > 0.0 && v[12] < 0.5);
        assert_eq!((v[14], v[15], v[16]), (2.0, 3.0, 2.0));
    }
}
