//! The scheduler's decisions without its I/O: which predictions become planned calls (and
//! which hold-out users get a never-dialled twin), when a due call must wait for its window,
//! and when a finished attempt is tried again. The server's scheduler reads the store, asks
//! these functions, and writes back what they return.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::calls::NewCall;
use crate::dial::Outcome;
use crate::event::UserProfile;
use crate::ids::{Millis, Topic, UserId};
use crate::policy::{Candidate, Policy, Skip};
use crate::predict::Prediction;

#[derive(Clone, Debug, Default, Serialize)]
pub struct PlanReport {
    pub planned: usize,
    pub holdout_twins: usize,
    pub skipped: HashMap<String, usize>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DialReport {
    pub dialled: usize,
    pub outcomes: HashMap<String, usize>,
    pub rescheduled: usize,
    pub interrupted: u64,
}

/// Calls still `dialing` this long after their claim belong to a process that died.
pub const STALE_DIALING_MS: i64 = 10 * 60_000;
/// Most calls dialled per tick.
pub const DIAL_BATCH: usize = 50;

/// What planning needs to know besides the predictions, as read from the store.
#[derive(Debug, Default)]
pub struct PlanState {
    pub profiles: HashMap<String, UserProfile>,
    /// Each predicted user's hold-out group.
    pub groups: HashMap<String, bool>,
    /// Per (user, topic): the last call's time and whether one is still open.
    pub history: HashMap<(String, String), (Option<Millis>, bool)>,
    /// Calls already planned per (skill, hour) and today, against the capacity limits.
    pub used: HashMap<(Topic, i64), u32>,
    pub planned_today: usize,
}

/// The calls to insert for `predictions` (already filtered by the policy's minimum
/// probability), with what happened to each candidate.
pub fn plan_calls(
    policy: &Policy,
    predictions: &[Prediction],
    state: PlanState,
    now: Millis,
) -> (Vec<NewCall>, PlanReport) {
    let reasons: HashMap<(String, String), String> = predictions
        .iter()
        .map(|p| {
            let text: Vec<&str> = p.reasons.iter().map(|r| r.text.as_str()).collect();
            ((p.user.clone(), p.topic.clone()), text.join("; "))
        })
        .collect();
    let candidates = candidates(predictions, &state);
    let (plan, skipped) = policy.plan(candidates, now, state.used, state.planned_today);

    let mut report = PlanReport::default();
    let mut rows: Vec<NewCall> = Vec::new();
    let new_call = |c: &Candidate, priority: f64, due_at: Millis, holdout: bool| NewCall {
        reasons: reasons
            .get(&(c.user.to_string(), c.topic.to_string()))
            .cloned()
            .unwrap_or_default(),
        user: c.user.clone(),
        topic: c.topic.clone(),
        probability: c.probability,
        priority,
        holdout,
        due_at,
    };
    for p in &plan {
        rows.push(new_call(&p.candidate, p.priority, p.at, false));
    }
    report.planned = plan.len();
    for (c, why) in &skipped {
        *report.skipped.entry(format!("{why:?}")).or_default() += 1;
        // A hold-out user who would otherwise have been called gets a twin row: the same
        // selection, never dialled, so the report compares like with like.
        let would_call = *why == Skip::Holdout
            && policy
                .eligible(
                    &Candidate {
                        holdout: false,
                        ..c.clone()
                    },
                    now,
                )
                .is_ok();
        if would_call {
            let due = TimeZone::get(&c.tz)
                .ok()
                .and_then(|tz| policy.next_window(&tz, now))
                .unwrap_or(now);
            rows.push(new_call(c, policy.priority(c), due, true));
            report.holdout_twins += 1;
        }
    }
    (rows, report)
}

/// The policy's view of each predicted user; a user with no profile cannot be called, so
/// their predictions are left out.
fn candidates(predictions: &[Prediction], state: &PlanState) -> Vec<Candidate> {
    predictions
        .iter()
        .filter_map(|p| {
            let profile = state.profiles.get(&p.user)?;
            let (last, open) = state
                .history
                .get(&(p.user.clone(), p.topic.clone()))
                .copied()
                .unwrap_or((None, false));
            Some(Candidate {
                user: UserId(p.user.clone()),
                topic: Topic(p.topic.clone()),
                probability: p.probability,
                tier: profile.tier,
                tz: profile.tz.clone(),
                phone: profile.phone.clone(),
                consent: profile.consent,
                do_not_call: profile.do_not_call,
                holdout: state.groups.get(&p.user).copied().unwrap_or(false),
                last_call: last,
                open_call: open,
            })
        })
        .collect()
}

/// `None` when a claimed call may be dialled now; otherwise when to try it instead. A call
/// that came due while the scheduler was down waits for the user's window, uncounted.
pub fn wait_for_window(policy: &Policy, tz: &str, now: Millis) -> Option<Millis> {
    let tz = TimeZone::get(tz).unwrap_or(TimeZone::UTC);
    if policy.in_window(&tz, now) {
        return None;
    }
    Some(policy.next_window(&tz, now).unwrap_or(now + 86_400_000))
}

/// When an attempt with this outcome is tried again: retryable ones come back after the
/// back-off, inside the user's window, while attempts remain.
pub fn retry_at(
    policy: &Policy,
    tz: &str,
    attempts: i64,
    outcome: &Outcome,
    now: Millis,
) -> Option<Millis> {
    if !outcome.retryable() {
        return None;
    }
    let tz = TimeZone::get(tz).unwrap_or(TimeZone::UTC);
    policy
        .retry_at(attempts.max(0) as u32, now)
        .and_then(|at| policy.next_window(&tz, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyConfig;

    /// 2026-11-21 12:00 UTC, a Saturday.
    const SATURDAY_NOON: Millis = Millis(1_795_262_400_000);
    const HOUR: i64 = 3_600_000;

    fn at(civil: &str) -> Millis {
        let ts = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M", civil)
            .expect("civil time")
            .to_zoned(TimeZone::UTC)
            .expect("zoned")
            .timestamp();
        Millis(ts.as_millisecond())
    }

    #[test]
    fn a_due_call_waits_for_the_users_window_and_goes_at_once_inside_it() {
        let policy = PolicyConfig::default().validate().expect("policy");
        assert_eq!(SATURDAY_NOON, at("2026-11-21 12:00"));
        assert_eq!(
            wait_for_window(&policy, "UTC", SATURDAY_NOON),
            Some(at("2026-11-23 09:00")),
            "Saturday waits for Monday 09:00"
        );
        assert_eq!(
            wait_for_window(&policy, "UTC", at("2026-11-23 10:00")),
            None
        );
        // An unknown zone is read as UTC rather than blocking the call for ever.
        assert_eq!(
            wait_for_window(&policy, "Mars/Olympus", at("2026-11-23 10:00")),
            None
        );
    }

    #[test]
    fn only_retryable_outcomes_come_back_inside_the_window_while_attempts_remain() {
        let policy = PolicyConfig::default().validate().expect("policy");
        let monday_ten = at("2026-11-23 10:00");
        assert_eq!(
            retry_at(&policy, "UTC", 1, &Outcome::Busy, monday_ten),
            Some(monday_ten + HOUR),
            "first back-off is an hour"
        );
        assert_eq!(
            retry_at(
                &policy,
                "UTC",
                2,
                &Outcome::NoAnswer,
                at("2026-11-23 17:00")
            ),
            Some(at("2026-11-24 09:00")),
            "a back-off past the window's end moves to the next morning"
        );
        assert_eq!(
            retry_at(&policy, "UTC", 3, &Outcome::Busy, monday_ten),
            None
        );
        assert_eq!(
            retry_at(&policy, "UTC", 1, &Outcome::Declined, monday_ten),
            None
        );
        assert_eq!(
            retry_at(
                &policy,
                "UTC",
                1,
                &Outcome::Failed("403".into()),
                monday_ten
            ),
            None
        );
    }
}
