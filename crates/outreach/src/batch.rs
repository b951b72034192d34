//! A batch of rows in, typed rows and numbered rejections out: the parsing that the HTTP
//! endpoint and the file importers share, so they accept exactly the same rows.

use serde::Serialize;

use crate::event::{BatchError, RowError, RowRejection, split_rows};

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
    parse: impl Fn(serde_json::Value) -> Result<T, RowRejection>,
) -> Result<(Vec<T>, Vec<RowError>), BatchError> {
    let mut good = Vec::new();
    let mut rejected = Vec::new();
    for (n, row) in split_rows(body)? {
        let row_number = first_row + n - 1;
        match row.and_then(&parse) {
            Ok(v) => good.push(v),
            Err(reason) => rejected.push(RowError {
                row: row_number,
                reason: reason.to_string(),
            }),
        }
    }
    Ok((good, rejected))
}
