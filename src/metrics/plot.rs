//! Percentile-distribution plots of latency histograms (PNG), drawn as HdrHistogram's plotter draws them:
//! latency against percentile on a "1/(1-p)" axis, so that 90 %, 99 %, 99.9 % … are evenly spaced.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

/// Where a font for the plot's text is looked for (`TICKLANE_FONT` first): Debian's fonts-dejavu-core, then
/// other common places. Text is drawn with ab_glyph from the file itself, so no fontconfig is needed.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    let wanted = std::env::var_os("TICKLANE_FONT");
    let candidates: Vec<std::path::PathBuf> = match &wanted {
        Some(p) => vec![p.into()],
        None => FONTS.iter().map(Into::into).collect(),
    };
    for p in &candidates {
        let Ok(bytes) = std::fs::read(p) else { continue };
        // Registered once for the life of the process (a command-line tool): the font must outlive it.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| anyhow::anyhow!("{} is not a TrueType font", p.display()));
    }
    match wanted {
        Some(p) => bail!("TICKLANE_FONT={}: cannot read it", p.to_string_lossy()),
        None => bail!(
            "no font for the plot's text in {}: install Debian's fonts-dejavu-core, or set TICKLANE_FONT to a .ttf file",
            FONTS.join(", ")
        ),
    }
}

/// `1/(1-p)` on a log10 scale: 0 at 0 %, 1 at 90 %, 2 at 99 % … ; the maximum (p = 1) is put at one sample
/// past the last, `log10(count)`.
fn x_of(p: f64, count: u64) -> f64 {
    if p >= 1.0 {
        (count.max(1) as f64).log10()
    } else {
        (1.0 / (1.0 - p)).log10()
    }
}

/// The axis label at `x`: `90%`, `99.9%`.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.round() as i64 - 2).clamp(0, 9) as usize;
    format!("{p:.digits$}%")
}

/// A stage's curve: (x, latency in µs) at HdrHistogram's quantile steps.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    h.iter_quantiles(5)
        .map(|v| (x_of(v.quantile_iterated_to(), h.len()), h.highest_equivalent(v.value_iterated_to()) as f64 / 1e3))
        .collect()
}

/// Writes `path` (PNG): one line per stage of `rows`, latency in µs on a log scale against percentile.
/// Empty histograms are left out; at least one must have samples.
pub fn percentile_plot(path: &Path, title: &str, rows: &[(&str, &Histogram<u64>)]) -> Result<()> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        rows.iter().filter(|(_, h)| !h.is_empty()).map(|(name, h)| (*name, curve(h))).collect();
    if curves.is_empty() {
        bail!("nothing to plot: every histogram is empty");
    }
    register_font()?;
    let points = || curves.iter().flat_map(|(_, c)| c.iter().copied());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max).ceil();
    let y_min = points().map(|p| p.1).filter(|&y| y > 0.0).fold(f64::INFINITY, f64::min).max(1e-3);
    let y_max = points().map(|p| p.1).fold(y_min, f64::max);
    // Whole decades around the data, so the log axis has labelled ticks.
    let (y_lo, y_hi) = (10f64.powf(y_min.log10().floor()), 10f64.powf(y_max.log10().ceil()).max(y_min * 10.0));

    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1200, 720)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(20)
            .margin_right(50)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, (y_lo..y_hi).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(x_max as usize + 1)
            .x_label_formatter(&|x| percentile_label(*x))
            .y_label_formatter(&|y| format!("{y}"))
            .x_desc("percentile")
            .y_desc("latency (µs)")
            .label_style(("sans-serif", 16))
            .draw()?;
        for (i, (name, c)) in curves.iter().enumerate() {
            let color = Palette99::pick(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(c.iter().map(|&(x, y)| (x, y.max(y_lo))), color))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], Palette99::pick(i).stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("{e}")).with_context(|| format!("drawing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_axis_spaces_nines_evenly() {
        assert_eq!(x_of(0.0, 10), 0.0);
        assert!((x_of(0.9, 10) - 1.0).abs() < 1e-12);
        assert!((x_of(0.999, 10) - 3.0).abs() < 1e-9);
        assert!((x_of(1.0, 1000) - 3.0).abs() < 1e-12, "the maximum at one sample past the last");
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }
}
