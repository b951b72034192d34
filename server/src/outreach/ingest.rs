//! Storing a parsed batch: the HTTP endpoint and `farsight events import` / `users import`
//! share this, so good rows are kept and bad ones numbered the same way everywhere.

use farsight_outreach::batch::{BatchReport, parse_rows};
use farsight_outreach::event::{BatchError, Event, UserProfile, parse_event, parse_profile};
use farsight_store::{IngestCounts, Store, StoreError};

/// Why a batch was not stored: the body as a whole (the caller's to fix) or the store.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ingests a batch of events: good rows are stored (with their feature updates) even when
/// other rows are rejected.
pub async fn ingest_events(
    store: &Store,
    body: &[u8],
    first_row: usize,
) -> Result<BatchReport, IngestError> {
    let (events, rejected): (Vec<Event>, _) = parse_rows(body, first_row, parse_event)?;
    let IngestCounts {
        accepted,
        duplicates,
    } = store.ingest_events(&events).await?;
    Ok(BatchReport {
        accepted,
        duplicates,
        rejected,
    })
}

/// Stores a batch of user profiles, keeping the good rows.
pub async fn ingest_users(
    store: &Store,
    body: &[u8],
    first_row: usize,
) -> Result<BatchReport, IngestError> {
    let (profiles, rejected): (Vec<UserProfile>, _) = parse_rows(body, first_row, parse_profile)?;
    store.upsert_users(&profiles).await?;
    Ok(BatchReport {
        accepted: profiles.len(),
        duplicates: 0,
        rejected,
    })
}
