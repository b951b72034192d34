//! Who may be called, when, and in what order: a pure function of the predictions, the
//! user's profile, the calls already made and `now`. No I/O, so every rule is unit-tested.
//!
//! Rules, each of which can only remove a call: do-not-call and missing consent are always
//! respected; the hold-out group is never called; a (user, topic) called within the
//! cool-down is skipped; calls happen only inside the calling window in the user's own time
//! zone, never on a configured holiday. Priority is plan tier weight × probability; the daily
//! budget and each skill's hourly agent capacity cap how many are planned.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::Tier;
use crate::ids::{Millis, Topic, UserId};

/// The `[outreach]` table of the configuration file, as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Calls planned per day, all skills together.
    pub daily_budget: usize,
    /// Share of users assigned, once, to the never-called hold-out group.
    pub holdout_fraction: f64,
    /// Changes which users fall in the hold-out; keep it fixed for the life of a study.
    pub holdout_salt: String,
    /// Predictions below this probability are not called.
    pub min_probability: f64,
    pub cooldown_days: u32,
    pub max_attempts: u32,
    /// Wait before attempt 2, 3, …; the last value repeats.
    pub retry_after_minutes: Vec<u32>,
    /// Local calling days: mon, tue, wed, thu, fri, sat, sun.
    pub days: Vec<String>,
    /// Local time the window opens and closes, `HH:MM`.
    pub start: String,
    pub end: String,
    /// Local dates nobody is called, `YYYY-MM-DD`.
    pub holidays: Vec<String>,
    /// Calls agents can take per hour, by skill (the topic); `default` for the others.
    pub capacity_per_hour: BTreeMap<String, u32>,
    /// Weight of each plan tier in the priority.
    pub tier_weight: BTreeMap<String, f64>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            daily_budget: 200,
            holdout_fraction: 0.10,
            holdout_salt: "farsight".into(),
            min_probability: 0.15,
            cooldown_days: 30,
            max_attempts: 3,
            retry_after_minutes: vec![60, 240],
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            start: "09:00".into(),
            end: "18:00".into(),
            holidays: Vec::new(),
            capacity_per_hour: BTreeMap::from([("default".into(), 20)]),
            tier_weight: BTreeMap::from([
                ("free".into(), 1.0),
                ("standard".into(), 1.5),
                ("gold".into(), 2.0),
                ("platinum".into(), 3.0),
            ]),
        }
    }
}

/// A validated policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub daily_budget: usize,
    pub holdout_fraction: f64,
    pub holdout_salt: String,
    pub min_probability: f64,
    pub cooldown_ms: i64,
    pub max_attempts: u32,
    pub retry_after_ms: Vec<i64>,
    pub days: Vec<Weekday>,
    pub start: Time,
    pub end: Time,
    pub holidays: Vec<Date>,
    pub capacity_per_hour: BTreeMap<String, u32>,
    pub tier_weight: HashMap<Tier, f64>,
}

/// Why an `[outreach]` table cannot become a [`Policy`]; each names the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("outreach.days: {0:?} is not a weekday")]
    Weekday(String),
    #[error("outreach.{field}: {value:?} is not HH:MM: {reason}")]
    Time {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("outreach.start must be before outreach.end")]
    EmptyWindow,
    #[error("outreach.holdout_fraction must be in [0, 1)")]
    HoldoutFraction,
    #[error("outreach.max_attempts must be at least 1")]
    NoAttempts,
    #[error("outreach.holidays: {value:?}: {reason}")]
    Holiday { value: String, reason: String },
    #[error("outreach.tier_weight: unknown tier {0:?}")]
    UnknownTier(String),
}

fn weekday(s: &str) -> Result<Weekday, PolicyError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        other => return Err(PolicyError::Weekday(other.to_string())),
    })
}

impl PolicyConfig {
    pub fn validate(&self) -> Result<Policy, PolicyError> {
        let time = |field: &'static str, s: &str| {
            s.parse::<Time>().map_err(|e| PolicyError::Time {
                field,
                value: s.to_string(),
                reason: e.to_string(),
            })
        };
        let (start, end) = (time("start", &self.start)?, time("end", &self.end)?);
        if start >= end {
            return Err(PolicyError::EmptyWindow);
        }
        if !(0.0..1.0).contains(&self.holdout_fraction) {
            return Err(PolicyError::HoldoutFraction);
        }
        if self.max_attempts == 0 {
            return Err(PolicyError::NoAttempts);
        }
        let holidays = self
            .holidays
            .iter()
            .map(|d| {
                d.parse::<Date>().map_err(|e| PolicyError::Holiday {
                    value: d.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut tier_weight = HashMap::new();
        for (name, w) in &self.tier_weight {
            let tier = Tier::parse(name).ok_or_else(|| PolicyError::UnknownTier(name.clone()))?;
            tier_weight.insert(tier, *w);
        }
        Ok(Policy {
            daily_budget: self.daily_budget,
            holdout_fraction: self.holdout_fraction,
            holdout_salt: self.holdout_salt.clone(),
            min_probability: self.min_probability,
            cooldown_ms: i64::from(self.cooldown_days) * 86_400_000,
            max_attempts: self.max_attempts,
            retry_after_ms: self
                .retry_after_minutes
                .iter()
                .map(|m| i64::from(*m) * 60_000)
                .collect(),
            days: self
                .days
                .iter()
                .map(|d| weekday(d))
                .collect::<Result<_, _>>()?,
            start,
            end,
            holidays,
            capacity_per_hour: self.capacity_per_hour.clone(),
            tier_weight,
        })
    }
}

/// Why a candidate is not called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    DoNotCall,
    NoConsent,
    NoPhone,
    Holdout,
    CoolDown,
    BelowThreshold,
    UnknownTimeZone,
    NoWindow,
    OverBudget,
    NoCapacity,
    AlreadyPlanned,
}

/// A predicted need with what the policy must know about the person.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub user: UserId,
    pub topic: Topic,
    pub probability: f64,
    pub tier: Tier,
    pub tz: String,
    pub phone: Option<String>,
    pub consent: bool,
    pub do_not_call: bool,
    pub holdout: bool,
    /// The last call (any outcome) on this (user, topic).
    pub last_call: Option<Millis>,
    /// A call for this pair is already planned or in progress.
    pub open_call: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlannedCall {
    pub candidate: Candidate,
    pub priority: f64,
    /// When to dial: inside the user's window and an hour with agent capacity.
    pub at: Millis,
}

/// The hold-out draw for a user: a stable hash, so the same user always lands in the same
/// group for the same salt and fraction.
pub fn in_holdout(user: &str, salt: &str, fraction: f64) -> bool {
    let digest = Sha256::digest(format!("{salt}\0{user}").as_bytes());
    let draw =
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
    draw < fraction
}

impl Policy {
    fn capacity(&self, skill: &str) -> u32 {
        self.capacity_per_hour
            .get(skill)
            .or_else(|| self.capacity_per_hour.get("default"))
            .copied()
            .unwrap_or(u32::MAX)
    }

    pub fn priority(&self, c: &Candidate) -> f64 {
        self.tier_weight.get(&c.tier).copied().unwrap_or(1.0) * c.probability
    }

    /// Whether `at` lies inside the calling window in `tz`.
    pub fn in_window(&self, tz: &TimeZone, at: Millis) -> bool {
        let Some(ts) = at.to_timestamp() else {
            return false;
        };
        let local = ts.to_zoned(tz.clone());
        self.days.contains(&local.weekday())
            && !self.holidays.contains(&local.date())
            && local.time() >= self.start
            && local.time() < self.end
    }

    /// The first instant at or after `from` inside the window in `tz`, looking up to
    /// three weeks ahead.
    pub fn next_window(&self, tz: &TimeZone, from: Millis) -> Option<Millis> {
        if self.in_window(tz, from) {
            return Some(from);
        }
        let mut date = from.to_timestamp()?.to_zoned(tz.clone()).date();
        for _ in 0..21 {
            if self.days.contains(&date.weekday()) && !self.holidays.contains(&date) {
                let opens = date.to_datetime(self.start).to_zoned(tz.clone()).ok()?;
                let opens = Millis::from_timestamp(opens.timestamp());
                if opens >= from && self.in_window(tz, opens) {
                    return Some(opens);
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Rules that depend only on the person and history, not on the day's plan.
    pub fn eligible(&self, c: &Candidate, now: Millis) -> Result<(), Skip> {
        if c.do_not_call {
            return Err(Skip::DoNotCall);
        }
        if !c.consent {
            return Err(Skip::NoConsent);
        }
        if c.phone.is_none() {
            return Err(Skip::NoPhone);
        }
        if c.holdout {
            return Err(Skip::Holdout);
        }
        if c.open_call {
            return Err(Skip::AlreadyPlanned);
        }
        if c.last_call.is_some_and(|t| now - t < self.cooldown_ms) {
            return Err(Skip::CoolDown);
        }
        if c.probability < self.min_probability {
            return Err(Skip::BelowThreshold);
        }
        Ok(())
    }

    /// Plans the day: highest priority first, each at the first window instant with an
    /// hour of agent capacity left for its skill, until the budget is spent. `used` counts
    /// calls already planned per (skill, hour bucket) and `planned_today` those already
    /// planned today. Returns the plan and why the others were skipped.
    pub fn plan(
        &self,
        mut candidates: Vec<Candidate>,
        now: Millis,
        mut used: HashMap<(Topic, i64), u32>,
        planned_today: usize,
    ) -> (Vec<PlannedCall>, Vec<(Candidate, Skip)>) {
        candidates.sort_by(|a, b| self.priority(b).total_cmp(&self.priority(a)));
        let mut plan = Vec::new();
        let mut skipped = Vec::new();
        const HOUR: i64 = 3_600_000;
        for c in candidates {
            if let Err(why) = self.eligible(&c, now) {
                skipped.push((c, why));
                continue;
            }
            if planned_today + plan.len() >= self.daily_budget {
                skipped.push((c, Skip::OverBudget));
                continue;
            }
            let Ok(tz) = TimeZone::get(&c.tz) else {
                skipped.push((c, Skip::UnknownTimeZone));
                continue;
            };
            let capacity = self.capacity(c.topic.as_str());
            let mut from = now;
            let mut slot = None;
            // Walk forward hour by hour through window time until an hour has room.
            for _ in 0..24 * 21 {
                let Some(at) = self.next_window(&tz, from) else {
                    break;
                };
                let bucket = at.0.div_euclid(HOUR);
                let n = used.entry((c.topic.clone(), bucket)).or_default();
                if *n < capacity {
                    *n += 1;
                    slot = Some(at);
                    break;
                }
                from = Millis((bucket + 1) * HOUR);
            }
            match slot {
                Some(at) => plan.push(PlannedCall {
                    priority: self.priority(&c),
                    candidate: c,
                    at,
                }),
                None => skipped.push((c, Skip::NoCapacity)),
            }
        }
        (plan, skipped)
    }

    /// When to try again after `attempts` failed attempts, or `None` when they are spent.
    pub fn retry_at(&self, attempts: u32, now: Millis) -> Option<Millis> {
        if attempts >= self.max_attempts {
            return None;
        }
        let i = (attempts as usize).saturating_sub(1);
        let wait = self
            .retry_after_ms
            .get(i)
            .or(self.retry_after_ms.last())
            .copied()
            .unwrap_or(3_600_000);
        Some(now + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        PolicyConfig {
            holidays: vec!["2026-12-25".into()],
            capacity_per_hour: BTreeMap::from([("default".into(), 2)]),
            ..PolicyConfig::default()
        }
        .validate()
        .expect("valid")
    }

    fn ms(rfc3339: &str) -> Millis {
        Millis::from_timestamp(rfc3339.parse::<jiff::Timestamp>().expect("time"))
    }

    fn candidate(user: &str, p: f64) -> Candidate {
        Candidate {
            user: user.into(),
            topic: "payments".into(),
            probability: p,
            tier: Tier::Free,
            tz: "Asia/Shanghai".into(),
            phone: Some("+8613800138000".into()),
            consent: true,
            do_not_call: false,
            holdout: false,
            last_call: None,
            open_call: false,
        }
    }

    #[test]
    fn window_is_in_the_users_own_time_zone() {
        let p = policy();
        let shanghai = TimeZone::get("Asia/Shanghai").expect("zone");
        let berlin = TimeZone::get("Europe/Berlin").expect("zone");
        // Tuesday 02:00 UTC is 10:00 in Shanghai and 03:00 in Berlin.
        let t = ms("2026-11-24T02:00:00Z");
        assert!(p.in_window(&shanghai, t));
        assert!(!p.in_window(&berlin, t));
        // Berlin opens at 09:00 local = 08:00 UTC (CET).
        assert_eq!(p.next_window(&berlin, t), Some(ms("2026-11-24T08:00:00Z")));
    }

    #[test]
    fn weekends_and_holidays_are_skipped() {
        let p = policy();
        let shanghai = TimeZone::get("Asia/Shanghai").expect("zone");
        // Friday 2026-12-25 is a holiday; Saturday and Sunday are not calling days.
        let christmas_eve_evening = ms("2026-12-24T11:00:00Z"); // 19:00 in Shanghai
        assert_eq!(
            p.next_window(&shanghai, christmas_eve_evening),
            Some(ms("2026-12-28T01:00:00Z")) // Monday 09:00 in Shanghai
        );
    }

    #[test]
    fn every_exclusion_rule_skips_with_its_reason() {
        let p = policy();
        let now = ms("2026-11-24T02:00:00Z");
        let cases = [
            (
                Candidate {
                    do_not_call: true,
                    ..candidate("a", 0.9)
                },
                Skip::DoNotCall,
            ),
            (
                Candidate {
                    consent: false,
                    ..candidate("b", 0.9)
                },
                Skip::NoConsent,
            ),
            (
                Candidate {
                    phone: None,
                    ..candidate("c", 0.9)
                },
                Skip::NoPhone,
            ),
            (
                Candidate {
                    holdout: true,
                    ..candidate("d", 0.9)
                },
                Skip::Holdout,
            ),
            (
                Candidate {
                    last_call: Some(now - 86_400_000),
                    ..candidate("e", 0.9)
                },
                Skip::CoolDown,
            ),
            (candidate("f", 0.01), Skip::BelowThreshold),
        ];
        for (c, why) in cases {
            assert_eq!(p.eligible(&c, now), Err(why), "{}", c.user);
        }
        let long_ago = Candidate {
            last_call: Some(now - 31 * 86_400_000),
            ..candidate("g", 0.9)
        };
        assert_eq!(p.eligible(&long_ago, now), Ok(()));
    }

    #[test]
    fn plan_orders_by_tier_weighted_probability_within_budget_and_capacity() {
        let mut p = policy();
        p.daily_budget = 3;
        let now = ms("2026-11-24T02:00:00Z"); // 10:00 in Shanghai
        let candidates = vec![
            candidate("low", 0.3),
            Candidate {
                tier: Tier::Platinum,
                ..candidate("platinum", 0.3)
            },
            candidate("high", 0.6),
            candidate("over-budget", 0.2),
        ];
        let (plan, skipped) = p.plan(candidates, now, HashMap::new(), 0);
        let order: Vec<_> = plan.iter().map(|c| c.candidate.user.as_str()).collect();
        assert_eq!(order, ["platinum", "high", "low"]);
        // Two an hour for the skill: the third waits for the next hour.
        assert_eq!(plan[0].at, now);
        assert_eq!(plan[1].at, now);
        assert_eq!(plan[2].at, ms("2026-11-24T03:00:00Z"));
        assert_eq!(skipped[0].1, Skip::OverBudget);
        let shanghai = TimeZone::get("Asia/Shanghai").expect("zone");
        assert!(plan.iter().all(|c| p.in_window(&shanghai, c.at)));
    }

    #[test]
    fn holdout_draw_is_stable_and_near_its_fraction() {
        let n = 20_000;
        let held = (0..n)
            .filter(|i| in_holdout(&format!("u{i}"), "s", 0.1))
            .count();
        assert!((held as f64 / n as f64 - 0.1).abs() < 0.01, "{held}");
        assert_eq!(in_holdout("u42", "s", 0.1), in_holdout("u42", "s", 0.1));
    }

    #[test]
    fn retries_back_off_then_stop() {
        let p = policy();
        let t = Millis(0);
        assert_eq!(p.retry_at(1, t), Some(t + 60 * 60_000));
        assert_eq!(p.retry_at(2, t), Some(t + 240 * 60_000));
        assert_eq!(p.retry_at(3, t), None);
    }

    #[test]
    fn bad_configuration_is_named() {
        let bad = PolicyConfig {
            start: "18:00".into(),
            end: "09:00".into(),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("start"));
        let bad = PolicyConfig {
            days: vec!["funday".into()],
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("funday"));
    }
}
