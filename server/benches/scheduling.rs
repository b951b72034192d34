//! Scheduling benchmark: policy decisions (eligibility, calling window in the user's zone,
//! skill capacity, budget) for a million predicted needs, against sorting the same needs
//! by priority alone — the least any scheduler must do — measured in the same run.
//!
//! `cargo bench -p farsight-server --bench scheduling`; FARSIGHT_BENCH_NEEDS sets the count.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Instant;

use farsight_outreach::event::Tier;
use farsight_outreach::ids::Millis;
use farsight_outreach::policy::{Candidate, PolicyConfig};
use rand::{Rng, SeedableRng};
use serde_json::json;

const ZONES: [&str; 8] = [
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
];
const TOPICS: [&str; 5] = ["live-streaming", "payments", "maps", "login", "push"];

fn main() {
    let needs: usize = common::env_or("FARSIGHT_BENCH_NEEDS", 1_000_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let tiers = [Tier::Free, Tier::Standard, Tier::Gold, Tier::Platinum];
    let candidates: Vec<Candidate> = (0..needs)
        .map(|i| Candidate {
            user: format!("u{i:07}").into(),
            topic: TOPICS[rng.random_range(0..TOPICS.len())].into(),
            probability: rng.random::<f64>().powi(3),
            tier: tiers[rng.random_range(0..tiers.len())],
            tz: ZONES[rng.random_range(0..ZONES.len())].into(),
            phone: rng.random_bool(0.95).then(|| "+4930123456".to_string()),
            consent: rng.random_bool(0.85),
            do_not_call: rng.random_bool(0.03),
            holdout: rng.random_bool(0.1),
            last_call: None,
            open_call: false,
        })
        .collect();
    let policy = PolicyConfig {
        daily_budget: 50_000,
        capacity_per_hour: [("default".to_string(), 2_000)].into(),
        ..PolicyConfig::default()
    }
    .validate()
    .expect("valid policy");
    let now = Millis::from_timestamp(
        "2026-11-24T03:00:00Z"
            .parse::<jiff::Timestamp>()
            .expect("time"),
    );

    let mut sorted: Vec<f64> = candidates.iter().map(|c| policy.priority(c)).collect();
    let started = Instant::now();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let sort_rate = needs as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let (plan, skipped) = policy.plan(candidates, now, HashMap::new(), 0);
    let plan_rate = needs as f64 / started.elapsed().as_secs_f64();
    println!(
        "{needs} needs: {} planned, {} skipped; {plan_rate:.0} decisions/s (sort by priority alone: {sort_rate:.0}/s, ratio {:.3})",
        plan.len(),
        skipped.len(),
        plan_rate / sort_rate
    );

    common::write_json(
        "scheduling",
        &json!({"date": common::today(), "commit": common::git_commit(), "machine": common::machine(),
            "needs": needs, "planned": plan.len(), "skipped": skipped.len(),
            "decisions_per_s": plan_rate, "sort_per_s": sort_rate}),
    )
    .expect("writing benchmarks/scheduling.json");
    common::write_section(
        "scheduling",
        &format!(
            "## Call scheduling\n\n`cargo bench -p farsight-server --bench scheduling` on {} ({}, commit {}): \
             {needs} predicted needs across 8 time zones and 5 skills, a budget of 50 000 calls, \
             2 000 per skill and hour.\n\n| measure | Farsight | reference (same run) | ratio |\n|---|---|---|---|\n\
             | scheduling decisions | {plan_rate:.0} needs/s ({} planned) | sorting by priority alone {sort_rate:.0}/s | {:.3} |\n",
            common::today(),
            common::machine(),
            common::git_commit(),
            plan.len(),
            plan_rate / sort_rate
        ),
    )
    .expect("writing BENCHMARKS.md");
}
