//! Shared by the benchmarks: where results go and what machine produced them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root (the benchmarks run from `server/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// Short commit hash, or "unknown" outside a git checkout.
pub fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(repo_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// CPU model and core count, for the record.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

pub fn today() -> String {
    jiff::Zoned::now().date().to_string()
}

/// Replaces the section between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in
/// BENCHMARKS.md (appending it when missing), leaving the other sections alone.
pub fn write_section(name: &str, body: &str) -> std::io::Result<()> {
    let path = repo_root().join("BENCHMARKS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nEach section is written by its benchmark, with the command that \
         produced it. Every figure sits beside a reference measured in the same run.\n"
            .to_string()
    });
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let updated = match (current.find(&begin), current.find(&end)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &current[..b], section, &current[e + end.len()..])
        }
        _ => format!("{}\n{}\n", current.trim_end(), section),
    };
    std::fs::write(path, updated)
}

/// Writes machine-readable results to `benchmarks/NAME.json`.
pub fn write_json(name: &str, value: &serde_json::Value) -> std::io::Result<()> {
    let dir = repo_root().join("benchmarks");
    std::fs::create_dir_all(&dir)?;
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    std::fs::write(dir.join(format!("{name}.json")), text + "\n")
}

/// A bench setting from the environment, or `default`. A value that does not parse stops
/// the bench rather than silently measuring something else.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid setting")),
        Err(_) => default,
    }
}

/// Nearest-rank percentile of sorted samples; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
