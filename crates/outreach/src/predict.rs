//! Scoring: every stored (user, topic) through the active model, the highest needs first,
//! each with the few features that raised it most, in words a caller can read.

use serde::Serialize;

use crate::event::{SdkVersion, Tier};
use crate::features::{FEATURE_NAMES, TopicState, UserContext, vector};
use crate::ids::Millis;
use crate::model::Model;

/// One stored (user, topic) feature state with what scoring needs about the user.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicRow {
    pub user: String,
    pub topic: String,
    pub state: TopicState,
    pub tier: Tier,
    pub sdk_version: Option<SdkVersion>,
    /// When the user's SDK version last changed (ms); 0 when never seen to change.
    pub sdk_upgraded_at: i64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Reason {
    pub feature: &'static str,
    pub value: f64,
    /// How much this feature added to the log-odds.
    pub weight: f64,
    pub text: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Prediction {
    pub user: String,
    pub topic: String,
    /// Calibrated probability of a support contact on this topic within 14 days.
    pub probability: f64,
    pub tier: Tier,
    pub reasons: Vec<Reason>,
}

/// The newest SDK version any user reported: the yardstick for "behind".
pub fn newest_sdk(rows: &[TopicRow]) -> Option<SdkVersion> {
    rows.iter().filter_map(|r| r.sdk_version).max()
}

pub fn context(row: &TopicRow, newest: Option<SdkVersion>) -> UserContext {
    UserContext {
        tier: row.tier,
        sdk_lag: match (row.sdk_version, newest) {
            (Some(v), Some(n)) => v.lag_behind(n),
            _ => 0.0,
        },
        sdk_upgraded_ms: (row.sdk_upgraded_at > 0).then_some(row.sdk_upgraded_at),
    }
}

/// The `top` highest predictions as of `at`, each with up to three reasons.
pub fn top_predictions(
    model: &Model,
    rows: &[TopicRow],
    newest: Option<SdkVersion>,
    at: Millis,
    top: usize,
) -> Vec<Prediction> {
    let mut scored: Vec<(f64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let x = vector(&row.state, &context(row, newest), at.0);
            (model.probability(&x), i)
        })
        .collect();
    let top = top.min(scored.len());
    if top == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(top - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(top);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored
        .into_iter()
        .map(|(probability, i)| {
            let row = &rows[i];
            let x = vector(&row.state, &context(row, newest), at.0);
            let reasons = model
                .explain(&x, 3)
                .into_iter()
                .map(|c| Reason {
                    feature: FEATURE_NAMES[c.feature],
                    value: c.value,
                    weight: c.logit,
                    text: describe(FEATURE_NAMES[c.feature], c.value, &row.topic, row.tier),
                })
                .collect();
            Prediction {
                user: row.user.clone(),
                topic: row.topic.clone(),
                probability,
                tier: row.tier,
                reasons,
            }
        })
        .collect()
}

/// A feature's value in words. Decayed counts are not exact counts, hence "about".
pub fn describe(feature: &str, value: f64, topic: &str, tier: Tier) -> String {
    let n = value.round() as i64;
    let times = |n: i64| {
        if n == 1 {
            "once".to_string()
        } else {
            format!("{n} times")
        }
    };
    match feature {
        "doc_views_1d" => format!("read {topic} docs about {} in the last day", times(n)),
        "doc_views_7d" => format!("read {topic} docs about {} in the last week", times(n)),
        "doc_views_28d" => format!("read {topic} docs about {} in the last month", times(n)),
        "api_errors_1d" => format!("about {n} {topic} API errors in the last day"),
        "api_errors_7d" => format!("about {n} {topic} API errors in the last week"),
        "api_errors_28d" => format!("about {n} {topic} API errors in the last month"),
        "feature_use_7d" => format!("used {topic} about {} in the last week", times(n)),
        "feature_use_28d" => format!("used {topic} about {} in the last month", times(n)),
        "support_contacts_28d" => format!("contacted support about {topic} recently"),
        "outreach_calls_28d" => format!("was called about {topic} recently"),
        "days_since_doc_view" => format!("last read {topic} docs {n} days ago"),
        "days_since_api_error" => format!("last {topic} API error {n} days ago"),
        "error_rate_7d" => format!(
            "{:.0}% of recent {topic} activity was errors",
            value * 100.0
        ),
        "doc_views_rising" => format!("reading {topic} docs more than usual"),
        "sdk_minor_versions_behind" => format!("SDK {n} minor versions behind the newest"),
        "days_since_sdk_upgrade" => format!("upgraded the SDK {n} days ago"),
        "plan_tier" => format!("{} plan", tier.as_str()),
        other => format!("{other} = {value:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            describe("doc_views_7d", 6.2, "live-streaming", Tier::Free),
            "read live-streaming docs about 6 times in the last week"
        );
        assert_eq!(
            describe("api_errors_7d", 3.0, "live-streaming", Tier::Free),
            "about 3 live-streaming API errors in the last week"
        );
        assert_eq!(
            describe("plan_tier", 3.0, "maps", Tier::Platinum),
            "platinum plan"
        );
    }
}
