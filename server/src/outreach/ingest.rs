//! A batch of rows in, typed rows and numbered rejections out. The HTTP endpoint and
//! `farsight events import` / `users import` share this, so they accept exactly the same.

use serde::Serialize;

use super::event::{Event, RowError, UserProfile, parse_event, parse_profile, split_rows};
use crate::store::{IngestCounts, Store, StoreError};

/// What happened to a batch: counts and every rejected row with its reason.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<RowError>,
}

impl BatchReport {
    pub fn add(&mut self, other: BatchReport) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected.extend(other.rejected);
    }
}

/// Parses rows with `parse`, offsetting row numbers by `first_row - 1` (for files read in
/// chunks); returns the good rows and the numbered rejections.
pub fn parse_rows<T>(
    body: &[u8],
    first_row: usize,
    parse: impl Fn(serde_json::Value) -> Result<T, String>,
) -> Result<(Vec<T>, Vec<RowError>), String> {
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    for (n, row) in split_rows(body)? {
        let row_number = first_row + n - 1;
        match row.and_then(&parse) {
            Ok(v) => good.push(v),
            Err(reason) => rejected.push(RowError {
                row: row_number,
                reason,
            }),
        }
    }
    Ok((good, rejected))
}

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
