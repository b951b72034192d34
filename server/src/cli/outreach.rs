//! `farsight outreach` (the effective policy, one scheduling pass, the report) and the
//! `events import` / `users import` file importers.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Subcommand;
use farsight_outreach::ids::Millis;
use farsight_outreach::policy::{Policy, PolicyConfig};
use farsight_server::config::{DialerConfig, StorageArgs};
use farsight_server::outreach::scheduler::{self, Dialer};
use farsight_server::outreach::{import, report};

use super::open_store;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import an NDJSON file (or a JSON array); bad rows are reported by line and skipped.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum OutreachCommand {
    /// Print the effective calling policy (defaults merged with the configuration file).
    Policy,
    /// Plan calls from the current predictions and dial those due, once (for cron).
    RunOnce {
        /// This scheduler's name in the call records.
        #[arg(long)]
        node: Option<String>,
    },
    /// Calls planned, placed and answered, and inbound contacts of called users against
    /// the hold-out, with the relative reduction and its 95% confidence interval.
    Report {
        /// Also draw the comparison as a PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(storage: &StorageArgs, cmd: OutreachCommand) -> anyhow::Result<()> {
    let (policy_config, dialer) = storage.outreach()?;
    let policy = policy_config
        .validate()
        .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    match cmd {
        OutreachCommand::Policy => print_policy(&policy_config, dialer),
        OutreachCommand::RunOnce { node } => run_once(storage, &policy, dialer, node).await,
        OutreachCommand::Report { png, json } => print_report(storage, png, json).await,
    }
}

/// Prints the effective configuration as the file's own tables, so it can be pasted back.
fn print_policy(policy: &PolicyConfig, dialer: Option<DialerConfig>) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        outreach: &'a PolicyConfig,
        dialer: Option<DialerConfig>,
    }
    let dialer = dialer.map(|mut d| {
        if let DialerConfig::Webhook { secret, .. } = &mut d {
            *secret = "***".into();
        }
        d
    });
    print!(
        "{}",
        toml::to_string(&Shown {
            outreach: policy,
            dialer
        })?
    );
    Ok(())
}

/// One planning and dialling pass, printed as JSON.
async fn run_once(
    storage: &StorageArgs,
    policy: &Policy,
    dialer: Option<DialerConfig>,
    node: Option<String>,
) -> anyhow::Result<()> {
    let Some(dialer_config) = dialer else {
        bail!("no [dialer] in the configuration: nothing would be dialled");
    };
    let dialer = Dialer::from_config(&dialer_config);
    let node = node
        .or_else(|| dialer_config.node().map(str::to_string))
        .unwrap_or_else(scheduler::default_node);
    let store = open_store(storage).await?;
    let (planned, dialled) =
        scheduler::run_once(&store, policy, &dialer, &node, Millis::now()).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"planned": planned, "dialled": dialled}))?
    );
    Ok(())
}

/// The report as text or JSON, and the chart when asked for.
async fn print_report(
    storage: &StorageArgs,
    png: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    let report = report::build(&store, Millis::now()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", farsight_outreach::report::render(&report));
    }
    if let Some(path) = png {
        report::chart(&report, &path)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

pub async fn import(storage: &StorageArgs, file: &Path, what: import::What) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    let report = import::import_file(&store, file, what).await?;
    for r in report.rejected.iter().take(20) {
        eprintln!("line {}: {}", r.row, r.reason);
    }
    if report.rejected.len() > 20 {
        eprintln!("… and {} more rejected lines", report.rejected.len() - 20);
    }
    println!(
        "{} accepted, {} duplicates, {} rejected",
        report.accepted,
        report.duplicates,
        report.rejected.len()
    );
    Ok(())
}
