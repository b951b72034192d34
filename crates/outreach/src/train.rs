//! From stored history to a fitted model: replay events in time order through the same
//! feature code the live path uses, snapshot every active (user, topic) at weekly cutoffs,
//! label each with "contacted support on that topic within the next 14 days", split by
//! time, fit, and measure on the most recent cutoffs against a frequency baseline.

use std::collections::HashMap;

use nalgebra::DMatrix;
use serde::Serialize;

use crate::event::{Event, EventKind, SdkVersion, Tier};
use crate::features::{DAY_MS, FEATURE_NAMES, FEATURES, Signal, TopicState, UserContext, vector};
use crate::model::{Dataset, Metrics, Model, ModelError, TrainOptions, evaluate};

#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The prediction horizon.
    pub horizon_days: f64,
    /// Days between cutoffs: the discrete time step of the hazard model.
    pub step_days: f64,
    /// History before the first cutoff, so features have something to say.
    pub warmup_days: f64,
    /// A pair is in the risk set at a cutoff if it had an event this recently.
    pub active_days: f64,
    /// The most recent cutoffs held out for measuring.
    pub test_fraction: f64,
    /// The most recent training cutoffs held out for calibrating probabilities.
    pub calibration_fraction: f64,
    pub options: TrainOptions,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            horizon_days: 14.0,
            step_days: 7.0,
            warmup_days: 14.0,
            active_days: 28.0,
            test_fraction: 0.25,
            calibration_fraction: 0.2,
            options: TrainOptions::default(),
        }
    }
}

/// One row of the training table: a pair's features at a cutoff and what happened next.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub user: String,
    pub topic: String,
    pub cutoff_ms: i64,
    pub features: [f64; FEATURES],
    pub label: bool,
}

/// Replays time-ordered `events` and snapshots the risk set at each cutoff whose horizon
/// lies fully inside the history (so every label is known).
pub fn build_dataset(
    events: &[Event],
    tiers: &HashMap<String, Tier>,
    cfg: &TrainConfig,
) -> Vec<Snapshot> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Vec::new();
    };
    let horizon = (cfg.horizon_days * DAY_MS) as i64;
    let day0 = first.ts - first.ts.rem_euclid(DAY_MS as i64);
    let cutoffs: Vec<i64> = (0..)
        .map(|k| day0 + ((cfg.warmup_days + k as f64 * cfg.step_days) * DAY_MS) as i64)
        .take_while(|c| c + horizon <= last.ts)
        .collect();

    let mut contacts: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::SupportContact)
    {
        contacts.entry((&e.user, &e.topic)).or_default().push(e.ts);
    }
    let contacted = |user: &str, topic: &str, from: i64| {
        contacts.get(&(user, topic)).is_some_and(|ts| {
            let i = ts.partition_point(|t| *t <= from);
            ts.get(i).is_some_and(|t| *t <= from + horizon)
        })
    };

    let mut states: HashMap<(&str, &str), TopicState> = HashMap::new();
    // Per user: the SDK version reported and when it last changed.
    let mut sdk: HashMap<&str, (SdkVersion, Option<i64>)> = HashMap::new();
    let mut newest: Option<SdkVersion> = None;
    let mut out = Vec::new();
    let mut next = events.iter().peekable();
    let active = (cfg.active_days * DAY_MS) as i64;
    for &cutoff in &cutoffs {
        while let Some(e) = next.next_if(|e| e.ts <= cutoff) {
            if let Some(signal) = Signal::of(e.kind) {
                states
                    .entry((&e.user, &e.topic))
                    .or_default()
                    .observe(signal, e.ts);
            } else if let Some(v) = e.sdk_version() {
                let upgraded = match sdk.get(e.user.as_str()) {
                    Some((old, _)) if *old != v => Some(e.ts),
                    Some((_, at)) => *at,
                    None => None,
                };
                sdk.insert(&e.user, (v, upgraded));
                newest = newest.max(Some(v));
            }
        }
        for (&(user, topic), state) in &states {
            if cutoff - state.reference_ms > active {
                continue;
            }
            let reported = sdk.get(user);
            let context = UserContext {
                tier: tiers.get(user).copied().unwrap_or_default(),
                sdk_lag: match (reported, newest) {
                    (Some((v, _)), Some(n)) => v.lag_behind(n),
                    _ => 0.0,
                },
                sdk_upgraded_ms: reported.and_then(|(_, at)| *at),
            };
            out.push(Snapshot {
                user: user.to_string(),
                topic: topic.to_string(),
                cutoff_ms: cutoff,
                features: vector(state, &context, cutoff),
                label: contacted(user, topic, cutoff),
            });
        }
    }
    // Hash-map order is random; a stable order keeps training reproducible.
    out.sort_by(|a, b| (a.cutoff_ms, &a.user, &a.topic).cmp(&(b.cutoff_ms, &b.user, &b.topic)));
    out
}

/// The frequency baseline: how often this pair contacted support lately, with the topic's
/// training-set contact rate breaking ties. What "call whoever called before" achieves.
pub fn baseline_scores(train: &[Snapshot], test: &[Snapshot]) -> Vec<f64> {
    let mut rate: HashMap<&str, (f64, f64)> = HashMap::new();
    for s in train {
        let r = rate.entry(&s.topic).or_default();
        r.0 += f64::from(u8::from(s.label));
        r.1 += 1.0;
    }
    let contacts = FEATURE_NAMES
        .iter()
        .position(|n| *n == "support_contacts_28d")
        .expect("feature exists");
    test.iter()
        .map(|s| {
            let (pos, n) = rate.get(s.topic.as_str()).copied().unwrap_or((0.0, 1.0));
            s.features[contacts] + pos / n.max(1.0)
        })
        .collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub train_examples: usize,
    pub calibration_examples: usize,
    pub test_examples: usize,
    pub cutoffs: usize,
    /// The model on the held-out most recent cutoffs.
    pub test: Metrics,
    /// The frequency baseline on the same rows.
    pub baseline: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("not enough history: {0}")]
    NotEnoughHistory(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn dataset(rows: &[Snapshot]) -> Dataset {
    Dataset {
        x: DMatrix::from_fn(rows.len(), FEATURES, |r, c| rows[r].features[c]),
        y: rows.iter().map(|s| s.label).collect(),
    }
}

/// Where the calibration and test slices begin: the most recent cutoffs are held out for
/// testing, and the most recent of the rest for calibration. `None` with under 3 cutoffs.
pub fn split_points(snapshots: &[Snapshot], cfg: &TrainConfig) -> Option<(i64, i64)> {
    let mut cutoffs: Vec<i64> = snapshots.iter().map(|s| s.cutoff_ms).collect();
    cutoffs.dedup();
    if cutoffs.len() < 3 {
        return None;
    }
    let n = cutoffs.len();
    // At least one cutoff each to fit, calibrate and test on.
    let test_at = ((n as f64 * (1.0 - cfg.test_fraction)).round() as usize).clamp(2, n - 1);
    let calibrate_at = ((test_at as f64 * (1.0 - cfg.calibration_fraction)).round() as usize)
        .clamp(1, test_at - 1);
    Some((cutoffs[calibrate_at], cutoffs[test_at]))
}

/// Splits by time, fits, calibrates and measures.
pub fn train(
    snapshots: &[Snapshot],
    cfg: &TrainConfig,
) -> Result<(Model, TrainReport), TrainError> {
    let Some((calibrate_from, test_from)) = split_points(snapshots, cfg) else {
        return Err(TrainError::NotEnoughHistory(format!(
            "fewer than 3 labelled weekly cutoffs; need about {} days of events",
            cfg.warmup_days + cfg.horizon_days + 2.0 * cfg.step_days
        )));
    };
    let cutoffs = {
        let mut c: Vec<i64> = snapshots.iter().map(|s| s.cutoff_ms).collect();
        c.dedup();
        c.len()
    };
    let (fit, rest): (Vec<_>, Vec<_>) = snapshots
        .iter()
        .cloned()
        .partition(|s| s.cutoff_ms < calibrate_from);
    let (calibrate, test): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|s| s.cutoff_ms < test_from);
    let names = FEATURE_NAMES.iter().map(|n| n.to_string()).collect();
    let model = Model::fit(names, &dataset(&fit), &dataset(&calibrate), &cfg.options)?;

    let labels: Vec<bool> = test.iter().map(|s| s.label).collect();
    let predictions: Vec<f64> = test
        .iter()
        .map(|s| model.probability(&s.features))
        .collect();
    let report = TrainReport {
        train_examples: fit.len(),
        calibration_examples: calibrate.len(),
        test_examples: test.len(),
        cutoffs,
        test: evaluate(&predictions, &labels),
        baseline: evaluate(&baseline_scores(&fit, &test), &labels),
    };
    Ok((model, report))
}
