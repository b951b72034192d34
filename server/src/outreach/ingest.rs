//! Storing a parsed batch: the HTTP endpoint and `farsight events import` / `users import`
//! share this, so good rows are kept and bad ones numbered the same way everywhere.

use farsight_outreach::batch::{BatchReport, parse_rows};
use farsight_outreach::event::{Event, UserProfile, parse_event, parse_profile};
use farsight_store::{IngestCounts, Store, StoreError};

/// Ingests a batch of events: good rows are stored (with their feature updates) even when
/// other rows are rejected.
pub async fn ingest_events(
    store: &Store,
    body: &[u8],
    first_row: usize,
) -> Result<Result<BatchReport, String>, StoreError> {
    let (events, rejected): (Vec<Event>, _) = match parse_rows(body, first_row, parse_event) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Err(e)),
    };
    let IngestCounts {
        accepted,
        duplicates,
    } = store.ingest_events(&events).await?;
    Ok(Ok(BatchReport {
        accepted,
        duplicates,
        rejected,
    }))
}

/// Stores a batch of user profiles, keeping the good rows.
pub async fn ingest_users(
    store: &Store,
    body: &[u8],
    first_row: usize,
) -> Result<Result<BatchReport, String>, StoreError> {
    let (profiles, rejected): (Vec<UserProfile>, _) =
        match parse_rows(body, first_row, parse_profile) {
            Ok(parsed) => parsed,
            Err(e) => return Ok(Err(e)),
        };
    store.upsert_users(&profiles).await?;
    Ok(Ok(BatchReport {
        accepted: profiles.len(),
        duplicates: 0,
        rejected,
    }))
}
