//! `farsight simulate`: writes the simulator's users and events as two NDJSON files, with a
//! spinner, and says how much it wrote.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use farsight_outreach::simulate::{SimulateOptions, simulate};

/// Writes `users.ndjson` and `events.ndjson` into `out` for `users` users over `days` days
/// from `start` (default: `days` days before today).
pub fn write_files(
    users: usize,
    days: u32,
    seed: u64,
    start: Option<jiff::civil::Date>,
    out: &Path,
) -> anyhow::Result<()> {
    let start = match start {
        Some(date) => date,
        None => jiff::Zoned::now()
            .date()
            .checked_sub(jiff::Span::new().days(i64::from(days)))?,
    };
    let start_ms = start
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_millisecond();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = out.join(name);
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(std::io::BufWriter::new(file))
    };
    let (mut users_out, mut events_out) = (open("users.ndjson")?, open("events.ndjson")?);
    let bar = indicatif::ProgressBar::new_spinner();
    let (mut n_users, mut n_events) = (0u64, 0u64);
    let (mut users_failed, mut events_failed) = (None, None);
    let options = SimulateOptions {
        users,
        days,
        seed,
        start_ms,
    };
    simulate(
        &options,
        |u| {
            n_users += 1;
            if let Err(e) = write_line(&mut users_out, u) {
                users_failed.get_or_insert(e);
            }
        },
        |e| {
            n_events += 1;
            if n_events % 100_000 == 0 {
                bar.set_message(format!("{n_events} events"));
                bar.tick();
            }
            if let Err(e) = write_line(&mut events_out, e) {
                events_failed.get_or_insert(e);
            }
        },
    );
    if let Some(e) = users_failed.or(events_failed) {
        return Err(anyhow::Error::from(e).context("writing the simulation"));
    }
    users_out.flush()?;
    events_out.flush()?;
    bar.finish_and_clear();
    println!(
        "{n_users} users and {n_events} events from {start} over {days} days written to {}",
        out.display()
    );
    Ok(())
}

fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
