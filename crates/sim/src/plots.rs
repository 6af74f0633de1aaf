//! SVG plots of simulation results: JCT CDF per policy, utilisation over time per cluster.
//!
//! Drawn with `plotters`' SVG backend, which writes text as SVG `<text>` elements, so no
//! system fonts are needed.

use crate::engine::SimulationResult;
use crate::error::{Error, Result};
use crate::report::{sorted_jcts, utilisation_over_time};
use plotters::prelude::*;
use std::path::Path;

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot { path: path.to_path_buf(), why: e.to_string() }
}

/// A CDF of job completion times (hours, log scale) with one line per policy.
pub fn jct_cdf(path: &Path, title: &str, runs: &[(&str, &SimulationResult)]) -> Result<()> {
    let series: Vec<(&str, Vec<f64>)> = runs.iter().map(|(name, r)| (*name, sorted_jcts(r))).collect();
    let hours = |s: f64| (s / 3600.0).max(1e-3);
    let lo = series.iter().filter_map(|(_, v)| v.first()).map(|s| hours(*s)).fold(f64::INFINITY, f64::min);
    let hi = series.iter().filter_map(|(_, v)| v.last()).map(|s| hours(*s)).fold(0.0, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo * 0.9, hi * 1.1) } else { (0.01, 10.0) };
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("job completion time (hours, log scale)")
        .y_desc("fraction of jobs")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (k, (name, v)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let n = v.len().max(1) as f64;
        // At most ~2000 points per line keeps the SVG small.
        let step = (v.len() / 2000).max(1);
        let points: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == v.len())
            .map(|(i, s)| (hours(*s), (i + 1) as f64 / n))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

/// Busy share of each cluster's devices over time, one line per cluster.
pub fn utilisation(path: &Path, title: &str, result: &SimulationResult) -> Result<()> {
    let series = utilisation_over_time(result, 300);
    let days = |s: f64| s / 86_400.0;
    let start = series.iter().flat_map(|(_, v)| v.first()).map(|p| days(p.0)).fold(f64::INFINITY, f64::min);
    let end = days(result.end_time as f64);
    let (start, end) = if start.is_finite() && end > start { (start, end) } else { (0.0, 1.0) };
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(start..end, 0.0..1.05)
        .map_err(|e| plot_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("simulated time (days)")
        .y_desc("busy share of devices")
        .draw()
        .map_err(|e| plot_error(path, e))?;
    for (k, (name, v)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(v.iter().map(|(t, u)| (days(*t), *u)), colour.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}

/// A line chart of named series of (x, y) points, with a horizontal rule at y = 0 when
/// the values cross it.
pub fn lines(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    let points = series.iter().flat_map(|(_, v)| v.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    // No points (the bounds are still infinite) or one x only: a default range.
    if x0.is_infinite() || x1 <= x0 {
        (x0, x1) = (0.0, 1.0);
    }
    if y0.is_infinite() || y1 < y0 {
        (y0, y1) = (0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-3);
    let (y0, y1) = (y0.min(0.0) - pad, y1.max(0.0) + pad);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| plot_error(path, e))?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(|e| plot_error(path, e))?;
    if y0 < 0.0 && y1 > 0.0 {
        chart
            .draw_series(LineSeries::new([(x0, 0.0), (x1, 0.0)], BLACK.mix(0.4).stroke_width(1)))
            .map_err(|e| plot_error(path, e))?;
    }
    for (k, (name, v)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(v.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok(())
}
