//! The outreach operations the command line and the HTTP API share: train from the store
//! and keep the model, and score the current state with the active model.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use farsight_outreach::features::FEATURE_NAMES;
use farsight_outreach::ids::Millis;
use farsight_outreach::model::Model;
use farsight_outreach::predict::{Prediction, newest_sdk, top_predictions};
use farsight_outreach::train::{
    Snapshot, TrainConfig, TrainError, TrainReport, build_dataset, split_points, train,
};
use farsight_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OutreachError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("no model yet: run `farsight model train`")]
    NoModel,
    #[error("model {0} was fitted on another feature set: run `farsight model train`")]
    Stale(i64),
    #[error("writing {path}: {source}")]
    Export {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize)]
pub struct Trained {
    pub id: i64,
    pub report: TrainReport,
    #[serde(skip)]
    pub model: Model,
}

/// Replays stored history, fits, measures, and stores the model as the active one.
/// `export` also writes the training table as CSV for outside comparisons.
pub async fn train_from_store(
    store: &Store,
    config: &TrainConfig,
    export: Option<&Path>,
) -> Result<Trained, OutreachError> {
    let events = store.events_in_order().await?;
    let tiers = store.user_tiers().await?;
    let snapshots = build_dataset(&events, &tiers, config);
    if let Some(path) = export {
        write_csv(path, &snapshots, config).map_err(|source| OutreachError::Export {
            path: path.display().to_string(),
            source,
        })?;
    }
    let (model, report) = train(&snapshots, config)?;
    let metrics = serde_json::to_value(&report).expect("report serialises");
    let id = store
        .save_model(
            &serde_json::to_string(&model).expect("model serialises"),
            &metrics,
        )
        .await?;
    Ok(Trained { id, report, model })
}

/// Features, label, cutoff and the split each row falls in, so another tool fits on exactly
/// the same table.
fn write_csv(path: &Path, snapshots: &[Snapshot], config: &TrainConfig) -> std::io::Result<()> {
    use std::io::Write;
    let splits = split_points(snapshots, config);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "split,cutoff_ms,{},label", FEATURE_NAMES.join(","))?;
    for s in snapshots {
        let split = match splits {
            Some((calibrate_from, _)) if s.cutoff_ms < calibrate_from => "train",
            Some((_, test_from)) if s.cutoff_ms < test_from => "calibrate",
            Some(_) => "test",
            None => "train",
        };
        let features: Vec<String> = s.features.iter().map(|v| format!("{v}")).collect();
        writeln!(
            out,
            "{split},{},{},{}",
            s.cutoff_ms,
            features.join(","),
            u8::from(s.label)
        )?;
    }
    out.flush()
}

/// What `farsight model train` prints.
pub fn render_report(t: &Trained) -> String {
    let r = &t.report;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model {} active: {} training rows, {} calibration, {} test, {} weekly cutoffs",
        t.id, r.train_examples, r.calibration_examples, r.test_examples, r.cutoffs
    );
    let _ = writeln!(
        out,
        "held-out test: AUC {:.3} (frequency baseline {:.3}), precision@1% {:.3} (baseline {:.3}), Brier {:.4}, base rate {:.3}",
        r.test.auc,
        r.baseline.auc,
        r.test.precision_at_1pct,
        r.baseline.precision_at_1pct,
        r.test.brier,
        r.test.base_rate
    );
    let _ = writeln!(out, "calibration     predicted  observed  rows");
    for b in &r.test.calibration {
        let _ = writeln!(
            out,
            "  {:.1}–{:.1}     {:>8.3}  {:>8.3}  {:>5}",
            b.lower, b.upper, b.mean_predicted, b.observed_rate, b.count
        );
    }
    let (intercept, coefficients) = t.model.coefficients_raw_scale();
    let _ = writeln!(
        out,
        "coefficients (per unit of each feature; intercept {intercept:+.3})"
    );
    for (name, c) in FEATURE_NAMES.iter().zip(coefficients) {
        let _ = writeln!(out, "  {name:<28} {c:+.4}");
    }
    out
}

/// The `top` highest needs now ("now" = the newest event stored, unless `at` is given).
pub async fn current_predictions(
    store: &Store,
    top: usize,
    at: Option<Millis>,
) -> Result<Vec<Prediction>, OutreachError> {
    let model = active_model(store).await?;
    let rows = store.topic_rows().await?;
    let at = match at {
        Some(at) => at,
        None => store.newest_event().await?.unwrap_or(Millis(0)),
    };
    Ok(top_predictions(&model, &rows, newest_sdk(&rows), at, top))
}

/// One user's highest need now (as [`current_predictions`] sees it): what an assist request
/// from them is most likely about. `None` without an active model or any history.
pub async fn top_need(store: &Store, user: &str) -> Result<Option<Prediction>, OutreachError> {
    let model = match active_model(store).await {
        Ok(model) => model,
        Err(OutreachError::NoModel | OutreachError::Stale(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let rows = store.user_topic_rows(user).await?;
    let at = store.newest_event().await?.unwrap_or(Millis(0));
    let newest = store.newest_sdk_version().await?;
    Ok(top_predictions(&model, &rows, newest, at, 1).pop())
}

async fn active_model(store: &Store) -> Result<Model, OutreachError> {
    let stored = store.active_model().await?.ok_or(OutreachError::NoModel)?;
    let model: Model = serde_json::from_str(&stored.model)
        .map_err(|e| StoreError::Corrupt(format!("model {}: {e}", stored.id)))?;
    model
        .check_features(&FEATURE_NAMES)
        .map_err(|_| OutreachError::Stale(stored.id))?;
    Ok(model)
}
