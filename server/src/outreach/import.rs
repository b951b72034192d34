//! `farsight events import` and `farsight users import`: NDJSON files read in chunks through
//! the same parsing and storage path as `POST /v1/events`, with a progress bar and row
//! numbers that count from the top of the file.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use farsight_outreach::batch::BatchReport;
use farsight_store::Store;

use super::ingest::{IngestError, ingest_events, ingest_users};

/// Lines per chunk: big enough to amortise transactions, small enough to show progress.
const CHUNK_LINES: usize = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Events,
    Users,
}

/// Why an import stopped; rows already stored stay stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("rows {first_row}..: {source}")]
    Rows {
        first_row: usize,
        source: farsight_outreach::event::BatchError,
    },
    #[error(transparent)]
    Store(#[from] farsight_store::StoreError),
}

pub async fn import_file(
    store: &Store,
    path: &Path,
    what: What,
) -> Result<BatchReport, ImportError> {
    let read_error = |source| ImportError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let mut reader = BufReader::new(file);
    let mut report = BatchReport::default();

    // A JSON array is one batch; NDJSON goes in chunks of lines.
    let starts_array = loop {
        let buf = reader.fill_buf().map_err(read_error)?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break buf[i] == b'[',
            None if buf.is_empty() => break false,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if starts_array {
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map_err(read_error)?;
        report.add(ingest(store, &body, 1, what).await?);
        bar.finish_with_message(summary(&report));
        return Ok(report);
    }

    let mut first_row = 1;
    let mut chunk = Vec::new();
    let mut lines = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(read_error)?;
        if n > 0 {
            chunk.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                chunk.push(b'\n');
            }
            lines += 1;
            bar.inc(n as u64);
        }
        if (n == 0 && lines > 0) || lines == CHUNK_LINES {
            report.add(ingest(store, &chunk, first_row, what).await?);
            bar.set_message(summary(&report));
            first_row += lines;
            chunk.clear();
            lines = 0;
        }
        if n == 0 {
            break;
        }
    }
    bar.finish_with_message(summary(&report));
    Ok(report)
}

async fn ingest(
    store: &Store,
    body: &[u8],
    first_row: usize,
    what: What,
) -> Result<BatchReport, ImportError> {
    let result = match what {
        What::Events => ingest_events(store, body, first_row).await,
        What::Users => ingest_users(store, body, first_row).await,
    };
    match result {
        Ok(report) => Ok(report),
        Err(IngestError::Batch(source)) => Err(ImportError::Rows { first_row, source }),
        Err(IngestError::Store(e)) => Err(e.into()),
    }
}

fn summary(r: &BatchReport) -> String {
    format!(
        "{} accepted, {} duplicates, {} rejected",
        r.accepted,
        r.duplicates,
        r.rejected.len()
    )
}
