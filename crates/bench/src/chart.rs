//! The SVG chart: one horizontal bar chart per scenario (a, b, c at the
//! most threads, d), log-scaled because the candidates span two to three
//! orders of magnitude, coloured by [`Group`].
//!
//! plotters draws it with its SVG backend only and no font feature: text is
//! written as SVG `<text>` elements for the viewer to render, so nothing
//! here needs fontconfig, FreeType or any other C library.

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::Report;
use crate::roster::Group;

/// One bar: a label, a colour group and a value (missing values get no bar).
struct Bar {
    label: String,
    group: Group,
    value: Option<f64>,
}

fn colour(group: Group) -> RGBColor {
    match group {
        Group::Allocator => RGBColor(120, 144, 156),
        Group::PoolCrate => RGBColor(245, 150, 30),
        Group::Arenapool => RGBColor(46, 125, 50),
        Group::Reference => RGBColor(190, 190, 190),
    }
}

const ROW_PX: u32 = 22;
const FONT: &str = "sans-serif";

/// Writes the chart of `report` to `path` (an `.svg` file).
///
/// # Errors
///
/// If the file cannot be written.
pub fn write_svg(report: &Report, path: &Path) -> Result<(), Box<dyn Error>> {
    let most = report.threads.last().copied().unwrap_or(1);
    let bars = |value: &dyn Fn(&crate::report::Row) -> Option<f64>| -> Vec<Bar> {
        report
            .rows
            .iter()
            .map(|r| Bar {
                label: r.name.clone(),
                group: r.group,
                value: value(r),
            })
            .collect()
    };
    let panels = [
        (
            "a: 1 thread round trip, ns (lower is better)".to_owned(),
            bars(&|r| r.round_trip_ns),
        ),
        (
            "b: 1 thread, 64 held, FIFO, ns (lower is better)".to_owned(),
            bars(&|r| r.window_ns),
        ),
        (
            format!("c: {most} threads, each round trips, total Mops/s (higher is better)"),
            bars(&|r| r.parallel_at(most)),
        ),
        (
            "d: acquire on A, release on B, Mops/s (higher is better)".to_owned(),
            bars(&|r| r.handoff_mops),
        ),
    ];

    let rows = u32::try_from(report.rows.len()).unwrap_or(u32::MAX);
    let panel_h = 90 + rows.saturating_mul(ROW_PX);
    let root = SVGBackend::new(path, (1500, 60 + 2 * panel_h)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "arenapool shoot-out: 4096-byte buffers, {} ({} CPUs){}",
        report.machine.cpu,
        report.machine.cpus,
        if report.quick { ", --quick" } else { "" }
    );
    let root = root.titled(&title, (FONT, 22))?;
    for (area, (caption, bars)) in root.split_evenly((2, 2)).iter().zip(&panels) {
        panel(area, caption, bars)?;
    }
    root.present()?;
    Ok(())
}

fn panel<DB>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    bars: &[Bar],
) -> Result<(), Box<dyn Error>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let values: Vec<f64> = bars
        .iter()
        .filter_map(|b| b.value)
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        (lo / 2.0, hi * 3.0)
    };
    let n = bars.len();
    // `0..n - 1` is n segments (the range is inclusive); segment `n - 1 - i`
    // holds bar `i`, so the table's first row is on top.
    let slot = |i: usize| n - 1 - i;

    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(250)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n.max(1) - 1).into_segmented())?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(s) if *s < n => bars[n - 1 - s].label.clone(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(TRANSPARENT)
        .y_labels(n)
        .x_labels(6)
        .y_label_formatter(&label)
        .x_label_formatter(&|x| format!("{x}"))
        .label_style((FONT, 12))
        .draw()?;

    let drawn: Vec<(usize, f64, Group)> = bars
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            Some((
                slot(i),
                b.value.filter(|v| v.is_finite() && *v > 0.0)?,
                b.group,
            ))
        })
        .collect();
    chart.draw_series(drawn.iter().map(|&(s, v, group)| {
        let mut bar = Rectangle::new(
            [
                (lo, SegmentValue::Exact(s)),
                (v, SegmentValue::Exact(s + 1)),
            ],
            colour(group).filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    chart.draw_series(drawn.iter().map(|&(s, v, _)| {
        let text = if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        };
        Text::new(text, (v * 1.06, SegmentValue::CenterOf(s)), (FONT, 12))
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Machine, Parallel, Row};

    #[test]
    fn writes_a_readable_svg() {
        let row = |name: &str, group, x: f64| Row {
            name: name.into(),
            group,
            round_trip_ns: Some(x),
            window_ns: Some(x * 10.0),
            parallel_mops: vec![Parallel {
                threads: 2,
                mops: 100.0 / x,
            }],
            handoff_mops: Some(10.0 / x),
            peak_rss_kib: Some(1000),
        };
        let report = Report {
            machine: Machine {
                cpu: "test".into(),
                cpus: 2,
                os: "linux".into(),
            },
            quick: true,
            repetitions: 1,
            sample_ms: 1.0,
            threads: vec![1, 2],
            channel: "chan".into(),
            rss_method: "none".into(),
            rows: vec![
                row("glibc with_capacity", Group::Allocator, 20.0),
                row("crossbeam ArrayQueue", Group::PoolCrate, 5.0),
                row("arenapool", Group::Arenapool, 4.0),
                Row {
                    name: "channel only".into(),
                    group: Group::Reference,
                    round_trip_ns: None,
                    window_ns: None,
                    parallel_mops: vec![],
                    handoff_mops: Some(30.0),
                    peak_rss_kib: None,
                },
            ],
            left_out: vec![],
            elapsed_s: 0.0,
        };
        let path = std::env::temp_dir().join(format!("arenapool-chart-{}.svg", std::process::id()));
        write_svg(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert!(
            svg.starts_with("<svg") || svg.starts_with("<?xml"),
            "{}",
            &svg[..80]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        // plotters puts each text element's content on its own line.
        let flat = svg.replace('\n', "");
        assert!(flat.contains(">arenapool</text>"), "labels are SVG text");
        assert!(flat.contains(">d: acquire on A, release on B"));
        assert!(svg.contains("<rect"));
    }
}
