//! The outreach report read from the store, and its chart: the figures come from
//! [`farsight_outreach::report`], the drawing (plotters, a system font, a PNG file) lives here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use farsight_outreach::ids::Millis;
use farsight_outreach::report::{Report, wilson};
use farsight_store::{Store, StoreError};

/// Why the chart could not be drawn. The messages carry their cause in the text (no error
/// source), so the command line prints them exactly as one line.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ChartError {
    #[error("chart font (install fonts-dejavu-core): {0}")]
    FontMissing(Arc<std::io::Error>),
    #[error("chart font could not be loaded")]
    FontRejected,
    #[error("temporary directory: {0}")]
    TempDir(Arc<std::io::Error>),
    #[error("reading {}: {source_text}", path.display())]
    Read { path: PathBuf, source_text: String },
    #[error("drawing {}: {reason}", path.display())]
    Draw { path: PathBuf, reason: String },
}

/// The report as of `now` (follow-up windows must have ended to count).
pub async fn build(store: &Store, now: Millis) -> Result<Report, StoreError> {
    let calls = store.calls().await?;
    let contacts = store.support_contacts().await?;
    Ok(farsight_outreach::report::build(&calls, &contacts, now))
}

/// Registers the chart font with plotters, once per process (plotters keeps it for ever).
fn register_font() -> Result<(), ChartError> {
    static REGISTERED: std::sync::OnceLock<Result<(), ChartError>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
                .map_err(|e| ChartError::FontMissing(Arc::new(e)))?;
            let font: &'static [u8] = Box::leak(font.into_boxed_slice());
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, font)
                .map_err(|_| ChartError::FontRejected)
        })
        .clone()
}

/// The chart as PNG bytes, for the HTTP API.
pub fn chart_png(r: &Report) -> Result<Vec<u8>, ChartError> {
    let dir = tempfile::tempdir().map_err(|e| ChartError::TempDir(Arc::new(e)))?;
    let path = dir.path().join("report.png");
    chart(r, &path)?;
    std::fs::read(&path).map_err(|e| ChartError::Read {
        source_text: e.to_string(),
        path,
    })
}

/// Draws the two arms' contact rates with their 95% intervals as a PNG.
pub fn chart(r: &Report, path: &Path) -> Result<(), ChartError> {
    use plotters::prelude::*;
    register_font()?;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (720, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = [&r.called, &r.holdout]
            .iter()
            .map(|a| wilson(a.rate, a.pairs).1)
            .fold(0.05, f64::max);
        let title = match r.reduction {
            Some(red) => format!(
                "Inbound contacts within 14 days: {:.1}% fewer when called",
                red * 100.0
            ),
            None => "Inbound contacts within 14 days".to_string(),
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..2f64, 0f64..(top * 1.3))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("contact rate")
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()?;
        for (i, (label, arm, color)) in [
            ("called", &r.called, RGBColor(46, 125, 50)),
            ("hold-out", &r.holdout, RGBColor(120, 120, 120)),
        ]
        .into_iter()
        .enumerate()
        {
            let x = i as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, arm.rate)],
                color.filled(),
            )))?;
            let (lo, hi) = wilson(arm.rate, arm.pairs);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x + 0.5, lo), (x + 0.5, hi)],
                BLACK.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{label}: {}/{}", arm.contacted, arm.pairs),
                (x + 0.22, arm.rate.max(hi) + top * 0.05),
                ("sans-serif", 16),
            )))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| ChartError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
