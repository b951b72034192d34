//! The outreach report: calls planned, placed and answered, and the effect — inbound support
//! contacts within 14 days of the call, called users against their hold-out twins, as a
//! relative reduction with a 95% confidence interval. Computed from records the caller reads.

use std::collections::HashMap;

use serde::Serialize;

use crate::calls::CallRecord;
use crate::ids::{Millis, Topic, UserId};

const HORIZON_MS: i64 = 14 * 86_400_000;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Arm {
    /// Calls (or hold-out twins) whose 14-day follow-up has ended.
    pub pairs: usize,
    /// Of those, how many contacted support on the topic within 14 days.
    pub contacted: usize,
    pub rate: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub planned: usize,
    pub dialled: usize,
    pub placed: usize,
    pub answered: usize,
    pub by_state: HashMap<String, usize>,
    pub called: Arm,
    pub holdout: Arm,
    /// 1 − (called rate / hold-out rate): the share of inbound contacts avoided.
    pub reduction: Option<f64>,
    /// 95% confidence interval of the reduction (from the log risk ratio).
    pub reduction_ci: Option<(f64, f64)>,
}

/// Relative reduction and its 95% interval from contacted/total in each arm; `None` when an
/// arm is empty or has no contacts (the log risk ratio is undefined).
pub fn reduction(called: (usize, usize), holdout: (usize, usize)) -> Option<(f64, (f64, f64))> {
    let (a, n1) = (called.0 as f64, called.1 as f64);
    let (c, n0) = (holdout.0 as f64, holdout.1 as f64);
    if a == 0.0 || c == 0.0 || n1 == 0.0 || n0 == 0.0 {
        return None;
    }
    let ln_rr = (a / n1).ln() - (c / n0).ln();
    let se = (1.0 / a - 1.0 / n1 + 1.0 / c - 1.0 / n0).sqrt();
    let (lo, hi) = ((ln_rr - 1.96 * se).exp(), (ln_rr + 1.96 * se).exp());
    Some((1.0 - ln_rr.exp(), (1.0 - hi, 1.0 - lo)))
}

fn arm<'a>(
    calls: impl Iterator<Item = (&'a CallRecord, Millis)>,
    contacts: &HashMap<(UserId, Topic), Vec<Millis>>,
    now: Millis,
) -> Arm {
    let mut out = Arm::default();
    for (call, index) in calls {
        if index + HORIZON_MS > now {
            continue;
        }
        out.pairs += 1;
        let contacted = contacts
            .get(&(call.user.clone(), call.topic.clone()))
            .is_some_and(|ts| ts.iter().any(|t| *t > index && *t <= index + HORIZON_MS));
        out.contacted += usize::from(contacted);
    }
    out.rate = if out.pairs == 0 {
        0.0
    } else {
        out.contacted as f64 / out.pairs as f64
    };
    out
}

/// The report as of `now` (follow-up windows must have ended to count), from every call
/// record and each (user, topic)'s inbound support contact times.
pub fn build(
    calls: &[CallRecord],
    contacts: &HashMap<(UserId, Topic), Vec<Millis>>,
    now: Millis,
) -> Report {
    let mut r = Report::default();
    for c in calls {
        *r.by_state.entry(c.state.clone()).or_default() += 1;
    }
    let real: Vec<&CallRecord> = calls.iter().filter(|c| !c.holdout).collect();
    r.planned = real.len();
    r.dialled = real.iter().filter(|c| c.first_dialed_at.is_some()).count();
    r.placed = real
        .iter()
        .filter(|c| matches!(c.state.as_str(), "placed" | "answered"))
        .count();
    r.answered = real.iter().filter(|c| c.state == "answered").count();
    // Intention to treat: every user a call was attempted for, whatever the outcome,
    // against every hold-out twin, indexed at the time the call would have happened.
    r.called = arm(
        real.iter()
            .filter_map(|c| c.first_dialed_at.map(|t| (*c, t))),
        contacts,
        now,
    );
    r.holdout = arm(
        calls.iter().filter(|c| c.holdout).map(|c| (c, c.due_at)),
        contacts,
        now,
    );
    if let Some((red, ci)) = reduction(
        (r.called.contacted, r.called.pairs),
        (r.holdout.contacted, r.holdout.pairs),
    ) {
        r.reduction = Some(red);
        r.reduction_ci = Some(ci);
    }
    r
}

pub fn render(r: &Report) -> String {
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let mut out = format!(
        "calls: {} planned, {} dialled, {} placed, {} answered\nstates: {:?}\n",
        r.planned, r.dialled, r.placed, r.answered, r.by_state
    );
    out += &format!(
        "inbound contacts within 14 days: called {}/{} ({}), hold-out {}/{} ({})\n",
        r.called.contacted,
        r.called.pairs,
        pct(r.called.rate),
        r.holdout.contacted,
        r.holdout.pairs,
        pct(r.holdout.rate)
    );
    out += &match (r.reduction, r.reduction_ci) {
        (Some(red), Some((lo, hi))) => format!(
            "reduction {} (95% CI {} to {}); reference claim 31%\n",
            pct(red),
            pct(lo),
            pct(hi)
        ),
        _ => "reduction: not enough completed follow-ups in both groups yet\n".to_string(),
    };
    out
}

/// Wilson 95% interval of a proportion.
pub fn wilson(p: f64, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (n, z) = (n as f64, 1.96f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    ((centre - half).max(0.0), centre + half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_matches_a_hand_computed_risk_ratio() {
        // 69/1000 called vs 100/1000 hold-out: RR 0.69, reduction 31%.
        let (red, (lo, hi)) = reduction((69, 1000), (100, 1000)).expect("defined");
        assert!((red - 0.31).abs() < 1e-12);
        // se = sqrt(1/69 - 1/1000 + 1/100 - 1/1000) = 0.15269…
        let se = (1.0f64 / 69.0 - 1.0 / 1000.0 + 1.0 / 100.0 - 1.0 / 1000.0).sqrt();
        assert!((hi - (1.0 - (0.69f64.ln() - 1.96 * se).exp())).abs() < 1e-12);
        assert!(lo < red && red < hi);
        assert_eq!(reduction((0, 10), (3, 10)), None);
    }
}
