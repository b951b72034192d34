//! `farsight model` and `farsight predictions`: train and list models, and print the highest
//! predicted needs as a table or JSON.

use std::path::PathBuf;

use clap::Subcommand;
use farsight_outreach::train::TrainConfig;
use farsight_server::config::StorageArgs;
use farsight_server::outreach::service;

use super::open_store;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Fit on stored history with a time-based split, report metrics, store it as active.
    Train {
        /// L2 penalty on the standardised coefficients.
        #[arg(long, default_value_t = 1.0)]
        l2: f64,
        /// Also write the training table as CSV (features and label) for comparisons.
        #[arg(long)]
        export: Option<PathBuf>,
    },
    /// List stored models with their metrics.
    List,
}

pub async fn run(storage: &StorageArgs, cmd: ModelCommand) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    match cmd {
        ModelCommand::Train { l2, export } => {
            let mut config = TrainConfig::default();
            config.options.l2 = l2;
            let trained = service::train_from_store(&store, &config, export.as_deref()).await?;
            println!("{}", service::render_report(&trained));
        }
        ModelCommand::List => {
            for m in store.models().await? {
                let active = if m.active { "active" } else { "" };
                println!("{:<18} {:<7} {}", m.id, active, m.metrics["test"]);
            }
        }
    }
    Ok(())
}

/// The `top` highest needs now: JSON, or one line each with the reasons in words.
pub async fn predictions(storage: &StorageArgs, top: usize, json: bool) -> anyhow::Result<()> {
    let store = open_store(storage).await?;
    let predictions = service::current_predictions(&store, top, None).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&predictions)?);
    } else {
        for p in predictions {
            let reasons: Vec<_> = p.reasons.iter().map(|r| r.text.as_str()).collect();
            println!(
                "{:>5.1}%  {:<10} {:<16} {}",
                p.probability * 100.0,
                p.user,
                p.topic,
                reasons.join("; ")
            );
        }
    }
    Ok(())
}
