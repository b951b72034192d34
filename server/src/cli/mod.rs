//! The `farsight` subcommands other than `serve`: each module owns its arguments (clap
//! derive) and how its results are printed, so `main.rs` only parses and dispatches.

pub mod model;
pub mod outreach;
pub mod probe;
pub mod simulate;
pub mod tokens;

use anyhow::Context;
use farsight_server::config::StorageArgs;
use farsight_store::Store;

/// Opens (and migrates) the store the storage options name, creating its data directory.
pub async fn open_store(storage: &StorageArgs) -> anyhow::Result<Store> {
    let (data_dir, url) = storage.resolve()?;
    farsight_server::create_data_dir(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    Store::open(&url)
        .await
        .with_context(|| format!("opening {}", farsight_server::redact(&url)))
}
