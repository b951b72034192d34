//! Outreach benchmark: ingest with feature updates against a plain insert of the same rows
//! (SQLite and PostgreSQL, same run), scoring throughput, and the model's AUC against
//! scikit-learn fitted on the same exported table.
//!
//! `cargo bench -p farsight-server --bench outreach`; FARSIGHT_BENCH_USERS sets the size.

#[path = "common/mod.rs"]
mod common;
#[path = "../../tests/support/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use farsight_outreach::event::{Event, UserProfile};
use farsight_outreach::features::{DAY_MS, vector};
use farsight_outreach::predict::{context, newest_sdk};
use farsight_outreach::simulate::{SimulateOptions, simulate};
use farsight_outreach::train::TrainConfig;
use farsight_server::outreach::service::train_from_store;
use farsight_store::Store;
use serde_json::json;

/// Rows per ingest call, as a platform would batch them.
const BATCH: usize = 5_000;

struct Rates {
    plain: f64,
    ingest: f64,
}

async fn rate(events: &[Event], mut run: impl AsyncFnMut(&[Event])) -> f64 {
    let started = Instant::now();
    for batch in events.chunks(BATCH) {
        run(batch).await;
    }
    events.len() as f64 / started.elapsed().as_secs_f64()
}

/// Plain insert on one fresh database, ingest with features on another.
async fn measure(
    plain_url: &str,
    ingest_url: &str,
    users: &[UserProfile],
    events: &[Event],
) -> Rates {
    let plain_store = Store::open(plain_url).await.expect("plain database");
    let plain = rate(events, async |b| {
        plain_store.insert_events_plain(b).await.expect("insert")
    })
    .await;
    let store = Store::open(ingest_url).await.expect("ingest database");
    store.upsert_users(users).await.expect("users");
    let ingest = rate(events, async |b| {
        store.ingest_events(b).await.expect("ingest");
    })
    .await;
    Rates { plain, ingest }
}

fn sklearn(table: &std::path::Path) -> serde_json::Value {
    let script = common::repo_root().join("benchmarks/compare_sklearn.py");
    match std::process::Command::new("python3")
        .arg(script)
        .arg(table)
        .output()
    {
        Ok(out) if out.status.success() => {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| json!({"error": e.to_string()}))
        }
        Ok(out) => {
            json!({"error": String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_string()})
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

#[tokio::main]
async fn main() {
    let users_n: usize = common::env_or("FARSIGHT_BENCH_USERS", 3000);
    let days = 84;
    let options = SimulateOptions {
        users: users_n,
        days,
        seed: 42,
        start_ms: 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS as i64,
    };
    let (mut users, mut events) = (Vec::new(), Vec::new());
    simulate(
        &options,
        |u| users.push(u.clone()),
        |e| events.push(e.clone()),
    );
    println!(
        "simulated {} users, {} events over {days} days",
        users.len(),
        events.len()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let lite = measure(&sqlite("plain.db"), &sqlite("ingest.db"), &users, &events).await;
    println!(
        "SQLite      plain {:>9.0} rows/s   ingest+features {:>9.0} events/s   ratio {:.2}",
        lite.plain,
        lite.ingest,
        lite.ingest / lite.plain
    );
    let (pg_plain, pg_ingest) = (postgres::PgCluster::start(), postgres::PgCluster::start());
    let pg = measure(&pg_plain.url(), &pg_ingest.url(), &users, &events).await;
    println!(
        "PostgreSQL  plain {:>9.0} rows/s   ingest+features {:>9.0} events/s   ratio {:.2}",
        pg.plain,
        pg.ingest,
        pg.ingest / pg.plain
    );

    let store = Store::open(&sqlite("ingest.db"))
        .await
        .expect("ingested database");
    let table = dir.path().join("training.csv");
    let trained = train_from_store(&store, &TrainConfig::default(), Some(&table))
        .await
        .expect("trains");
    let report = &trained.report;
    let reference = sklearn(&table);
    let best_sklearn = ["logistic_regression", "gradient_boosting"]
        .iter()
        .filter_map(|m| reference[m]["auc"].as_f64())
        .fold(f64::NAN, f64::max);
    println!(
        "AUC         farsight {:.4}   frequency baseline {:.4}   scikit-learn {}",
        report.test.auc, report.baseline.auc, reference
    );

    // Scoring: feature vector and calibrated probability for every stored pair, repeated
    // for at least a second.
    let rows = store.topic_rows().await.expect("rows");
    let newest = newest_sdk(&rows);
    let at = rows.iter().map(|r| r.state.reference_ms).max().unwrap_or(0);
    let (mut scored, mut checksum) = (0usize, 0.0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        for row in &rows {
            checksum += trained
                .model
                .probability(&vector(&row.state, &context(row, newest), at));
        }
        scored += rows.len();
    }
    let score_rate = scored as f64 / started.elapsed().as_secs_f64();
    println!(
        "scoring     {score_rate:.0} user-topic pairs/s over {} pairs (checksum {checksum:.1})",
        rows.len()
    );

    let result = json!({
        "date": common::today(), "commit": common::git_commit(), "machine": common::machine(),
        "users": users.len(), "events": events.len(), "days": days,
        "ingest": {
            "sqlite": {"plain_rows_per_s": lite.plain, "ingest_events_per_s": lite.ingest, "ratio": lite.ingest / lite.plain},
            "postgres": {"plain_rows_per_s": pg.plain, "ingest_events_per_s": pg.ingest, "ratio": pg.ingest / pg.plain},
        },
        "scoring_pairs_per_s": score_rate,
        "model": report, "scikit_learn": reference,
    });
    common::write_json("outreach", &result).expect("writing benchmarks/outreach.json");
    let auc_gap = best_sklearn - report.test.auc;
    let section = format!(
        "## Outreach prediction\n\n\
         `cargo bench -p farsight-server --bench outreach` on {} ({}, commit {}): {} simulated users, \
         {} events over {days} days, batches of {BATCH}.\n\n\
         | measure | Farsight | reference (same run) | ratio |\n|---|---|---|---|\n\
         | ingest with feature updates, SQLite | {:.0} events/s | plain insert {:.0} rows/s | {:.2} |\n\
         | ingest with feature updates, PostgreSQL | {:.0} events/s | plain insert {:.0} rows/s | {:.2} |\n\
         | scoring | {:.0} user-topic pairs/s | | |\n\
         | test AUC (14-day contact) | {:.4} | frequency baseline {:.4}; best scikit-learn {:.4} | gap to scikit-learn {:+.4} |\n\n\
         Targets: ingest at least half the plain-insert rate; AUC within 0.01 of the best \
         scikit-learn model (logistic regression or gradient boosting on the same table, \
         `benchmarks/compare_sklearn.py`). Precision at the top 1%: {:.3}; Brier {:.4}; base \
         rate {:.3}. Full figures: `benchmarks/outreach.json`.\n",
        common::today(),
        common::machine(),
        common::git_commit(),
        users.len(),
        events.len(),
        lite.ingest,
        lite.plain,
        lite.ingest / lite.plain,
        pg.ingest,
        pg.plain,
        pg.ingest / pg.plain,
        score_rate,
        report.test.auc,
        report.baseline.auc,
        best_sklearn,
        auc_gap,
        report.test.precision_at_1pct,
        report.test.brier,
        report.test.base_rate,
    );
    common::write_section("outreach", &section).expect("writing BENCHMARKS.md");
}
