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

pub async fn import_file(store: &Store, path: &Path, what: What) -> anyhow::Result<BatchReport> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    let size = file.metadata()?.len();
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
        let buf = reader.fill_buf()?;
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
        reader.read_to_end(&mut body)?;
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
        let n = reader.read_until(b'\n', &mut line)?;
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
) -> anyhow::Result<BatchReport> {
    let result = match what {
        What::Events => ingest_events(store, body, first_row).await,
        What::Users => ingest_users(store, body, first_row).await,
    };
    match result {
        Ok(report) => Ok(report),
        Err(IngestError::Batch(e)) => Err(anyhow::anyhow!("rows {first_row}..: {e}")),
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
