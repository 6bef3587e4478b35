//! The case studies' SVG charts: the packet server's round-trip CDF and
//! throughput over time per mode, and the HTTP server's figures against
//! connection counts.
//!
//! plotters draws them with its SVG backend and no font feature: text is
//! left to the viewer, so nothing here needs a C library.

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

use crate::buffers::Mode;
use crate::case::CaseResult;
use crate::config::{ServerConfig, UdpIo};
use crate::http::HttpMode;
use crate::load::TIMELINE_STEP;

const FONT: &str = "sans-serif";

fn mode_colour(mode: Mode) -> RGBColor {
    match mode {
        Mode::Pool => RGBColor(46, 125, 50),
        Mode::Vec => RGBColor(120, 144, 156),
        Mode::Uring => RGBColor(21, 101, 192),
    }
}

/// A run's colour: its mode's hue, lighter for the loop with a system
/// call per datagram and darker with GRO/GSO.
fn colour(config: &ServerConfig) -> RGBColor {
    let RGBColor(r, g, b) = mode_colour(config.mode);
    let towards = |c: u8, to: u8, f: f64| (f64::from(c) + (f64::from(to) - f64::from(c)) * f) as u8;
    match (config.mode, config.io, config.gso) {
        (Mode::Uring, ..) | (_, UdpIo::Mmsg, false) => RGBColor(r, g, b),
        (_, UdpIo::PerDatagram, _) => RGBColor(
            towards(r, 255, 0.5),
            towards(g, 255, 0.5),
            towards(b, 255, 0.5),
        ),
        (_, UdpIo::Mmsg, true) => RGBColor(
            towards(r, 0, 0.45),
            towards(g, 0, 0.45),
            towards(b, 0, 0.45),
        ),
    }
}

/// Round-trip CDF: x = RTT in microseconds (log), y = fraction of replies.
pub(crate) fn latency_cdf(runs: &[CaseResult], path: &Path) -> Result<(), Box<dyn Error>> {
    let points = |r: &CaseResult| -> Vec<(f64, f64)> {
        r.load
            .latency
            .cdf
            .iter()
            .map(|&(q, ns)| ((ns.max(1) as f64) / 1000.0, q))
            .collect()
    };
    let all: Vec<f64> = runs.iter().flat_map(points).map(|(x, _)| x).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if all.is_empty() {
        (1.0, 1000.0)
    } else {
        (lo / 1.5, hi * 1.5)
    };

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Round-trip time CDF per server mode (loopback)", (FONT, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("round-trip time (us, log scale)")
        .y_desc("fraction of replies")
        .draw()?;
    for r in runs {
        let c = colour(&r.server.config);
        chart
            .draw_series(LineSeries::new(points(r), c.stroke_width(2)))?
            .label(format!(
                "{}: p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us",
                r.server.config.label(),
                r.load.latency.p50_ns as f64 / 1000.0,
                r.load.latency.p99_ns as f64 / 1000.0,
                r.load.latency.p999_ns as f64 / 1000.0
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Verified replies per second over time, per mode.
pub(crate) fn throughput(runs: &[CaseResult], path: &Path) -> Result<(), Box<dyn Error>> {
    let step = TIMELINE_STEP.as_secs_f64();
    let points = |r: &CaseResult| -> Vec<(f64, f64)> {
        r.load
            .timeline
            .iter()
            .enumerate()
            .map(|(i, &n)| ((i as f64 + 1.0) * step, n as f64 / step))
            .collect()
    };
    let x_hi = runs
        .iter()
        .map(|r| r.load.timeline.len() as f64 * step)
        .fold(step, f64::max);
    let y_hi = runs
        .iter()
        .flat_map(points)
        .map(|(_, y)| y)
        .fold(1.0, f64::max)
        * 1.15;

    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput: verified replies per second (100 ms buckets)",
            (FONT, 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_hi, 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("packets/s")
        .draw()?;
    for r in runs {
        let c = colour(&r.server.config);
        chart
            .draw_series(LineSeries::new(points(r), c.stroke_width(2)))?
            .label(format!(
                "{}: {:.0} packets/s overall",
                r.server.config.label(),
                r.load.throughput()
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The colour of an HTTP server mode: pool, Vec and io_uring as in the
/// packet server's charts, hyper its own.
pub(crate) fn http_colour(mode: HttpMode) -> RGBColor {
    match mode {
        HttpMode::Pool => mode_colour(Mode::Pool),
        HttpMode::Vec => mode_colour(Mode::Vec),
        HttpMode::Uring => mode_colour(Mode::Uring),
        HttpMode::Hyper => RGBColor(198, 40, 40),
    }
}

/// One line of [`lines_by_connections`].
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) colour: RGBColor,
    /// (connections, value), in any order.
    pub(crate) points: Vec<(f64, f64)>,
}

/// A value against connection counts (log scale), one line per series,
/// with a marker at each measured point.
pub(crate) fn lines_by_connections(
    title: &str,
    y_desc: &str,
    series: &[Series],
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, 1.0f64), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let x_lo = if x_lo.is_finite() { x_lo / 1.5 } else { 1.0 };
    let y_hi = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_lo.max(0.5)..x_hi * 1.5).log_scale(), 0.0..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("busy keep-alive connections (log scale)")
        .y_desc(y_desc)
        .draw()?;
    for s in series {
        let mut points = s.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let c = s.colour;
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
