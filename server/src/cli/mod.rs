//! The `farsight` subcommands other than `serve`: each module owns its arguments (clap
//! derive) and how its results are printed, so `main.rs` only parses and dispatches.

pub mod audit;
pub mod model;
pub mod outreach;
pub mod probe;
pub mod simulate;
pub mod tokens;

use anyhow::Context;
use farsight_server::config::StorageArgs;
use farsight_store::{Actor, Store};

/// Who acts from the command line, for the audit log: whoever can open the database, named
/// by their login.
pub fn command_line_actor() -> Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown user".into());
    Actor {
        token: None,
        name: format!("command line ({user})"),
    }
}

/// Opens (and migrates) the store the storage options name, creating its data directory.
pub async fn open_store(storage: &StorageArgs) -> anyhow::Result<Store> {
    let (data_dir, url) = storage.resolve()?;
    farsight_server::create_data_dir(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    Store::open(&url)
        .await
        .with_context(|| format!("opening {}", farsight_server::redact(&url)))
}
