//! PNG plots of a run, as Jepsen draws them: every operation's latency over time (latency-raw),
//! ok/fail/info rates over time, and for Layer 2 which MAC answered each address when; fault
//! windows shaded and named.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::checker::l2::Reply;
use crate::history::{Fun, History, OpType};
use crate::nemesis::Window;

/// Where Debian's DejaVu fonts live (package fonts-dejavu-core, installed by the project's
/// scripts); plotters draws text with a font it is given, not the system's.
const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONT_PATHS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| format!("no font at {FONT_PATHS:?} (install fonts-dejavu-core)"))?;
        // Registered once for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the DejaVu font cannot be read".to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Shades each fault window over `y` and names it at the top.
fn shade<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    windows: &[Window],
    end: f64,
    y: (f64, f64),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    shade_at(chart, windows, end, y, y.1)
}

/// Shades each fault window over `y` and names it at height `label_y`.
fn shade_at<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    windows: &[Window],
    end: f64,
    y: (f64, f64),
    label_y: f64,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    for w in windows {
        let (a, b) = (w.start as f64 / 1e9, w.end.map_or(end, |e| e as f64 / 1e9));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(a, y.0), (b, y.1)],
                RGBColor(200, 200, 200).mix(0.35).filled(),
            )))
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(Text::new(
                w.name.clone(),
                (a, label_y),
                ("sans-serif", 12).into_font(),
            )))
            .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

/// Draws the legend and writes the picture.
fn finish<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn color(kind: OpType) -> RGBColor {
    match kind {
        OpType::Ok => RGBColor(0x3b, 0x8f, 0x3b),
        OpType::Fail => RGBColor(0xc0, 0x30, 0x30),
        _ => RGBColor(0xe0, 0x9a, 0x10),
    }
}

/// Latency of every operation over time, by outcome, on a log scale.
pub fn latency_raw(history: &History, windows: &[Window], path: &Path) -> Result<()> {
    font()?;
    let end = history.end() as f64 / 1e9;
    let points = latency_points(history)?;
    let max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "latency of every operation (ms, log scale)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..end.max(1.0), (0.01f64..max).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("latency, ms")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    shade_at(&mut chart, windows, end, (0.01, max), max / 1.4)?;
    draw_latencies(&mut chart, &points)?;
    finish(&mut chart, &root)
}

/// Every operation as (invoked at s, latency ms, outcome, function).
fn latency_points(history: &History) -> Result<Vec<(f64, f64, OpType, Fun)>> {
    let pairs = history.pairs()?;
    Ok(pairs
        .iter()
        .map(|p| {
            let t = p.invoke.time as f64 / 1e9;
            let lat = p
                .latency()
                .map_or((history.end().saturating_sub(p.invoke.time)) as f64, |l| {
                    l as f64
                })
                / 1e6;
            (t, lat.max(0.01), p.outcome(), p.invoke.f)
        })
        .collect())
}

/// One labelled series per outcome and function: colour by outcome, marker by function.
fn draw_latencies<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    points: &[(f64, f64, OpType, Fun)],
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    for kind in [OpType::Ok, OpType::Fail, OpType::Info] {
        for f in [Fun::Allocate, Fun::Release, Fun::Read] {
            let c = color(kind);
            let series: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.2 == kind && p.3 == f)
                .map(|p| (p.0, p.1))
                .collect();
            if series.is_empty() {
                continue;
            }
            let label = format!("{:?} {:?}", f, kind).to_lowercase();
            let drawn = match f {
                Fun::Allocate => chart.draw_series(
                    series
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 2, c.filled())),
                ),
                Fun::Release => chart.draw_series(
                    series
                        .iter()
                        .map(|&(x, y)| TriangleMarker::new((x, y), 3, c.filled())),
                ),
                Fun::Read => {
                    chart.draw_series(series.iter().map(|&(x, y)| Cross::new((x, y), 2, c)))
                }
            }
            .map_err(|e| anyhow!("{e}"))?;
            drawn
                .label(label)
                .legend(move |(x, y)| Circle::new((x, y), 3, c.filled()));
        }
    }
    Ok(())
}

/// Operations completed per second, by outcome.
pub fn rates(history: &History, windows: &[Window], path: &Path) -> Result<()> {
    font()?;
    let pairs = history.pairs()?;
    let end_ns = history.end();
    let seconds = (end_ns / 1_000_000_000 + 1) as usize;
    let mut counts: BTreeMap<OpType, Vec<f64>> = BTreeMap::new();
    for kind in [OpType::Ok, OpType::Fail, OpType::Info] {
        counts.insert(kind, vec![0.0; seconds]);
    }
    for p in &pairs {
        let at = p.complete.map_or(end_ns, |c| c.time);
        let bucket = (at / 1_000_000_000) as usize;
        if let Some(v) = counts.get_mut(&p.outcome()) {
            if bucket < v.len() {
                v[bucket] += 1.0;
            }
        }
    }
    let max = counts.values().flatten().copied().fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("operations per second, by outcome", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("operations/s")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    shade(&mut chart, windows, seconds as f64, (0.0, max))?;
    for (kind, v) in &counts {
        let c = color(*kind);
        chart
            .draw_series(LineSeries::new(
                v.iter().enumerate().map(|(i, y)| (i as f64 + 0.5, *y)),
                c.stroke_width(2),
            ))
            .map_err(|e| anyhow!("{e}"))?
            .label(format!("{kind:?}").to_lowercase())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    finish(&mut chart, &root)
}

/// Which MAC answered each address when (ARP and NDP), one row per address.
pub fn answers(
    replies: &[Reply],
    addresses: &[IpAddr],
    windows: &[Window],
    end_ns: u64,
    path: &Path,
) -> Result<()> {
    font()?;
    let end = end_ns as f64 / 1e9;
    let rows = addresses.len().max(1) as f64;
    let macs: Vec<String> = {
        let mut m: Vec<String> = replies.iter().filter_map(|r| r.mac.clone()).collect();
        m.sort();
        m.dedup();
        m
    };
    let root =
        BitMapBackend::new(path, (1400, 200 + 60 * addresses.len() as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "who answered (ARP, NDP): one row per address, one colour per MAC",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(170)
        .build_cartesian_2d(0f64..end.max(1.0), -0.5f64..rows - 0.5)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_labels(addresses.len().max(1))
        .y_label_formatter(&|y| {
            addresses
                .get(y.round() as usize)
                .map(|a| a.to_string())
                .unwrap_or_default()
        })
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    shade(&mut chart, windows, end, (-0.5, rows - 0.5))?;
    for (mi, mac) in macs.iter().enumerate() {
        let c = Palette99::pick(mi).to_rgba();
        let pts: Vec<(f64, f64)> = replies
            .iter()
            .filter(|r| r.mac.as_ref() == Some(mac))
            .filter_map(|r| {
                let row = addresses.iter().position(|a| *a == r.addr)? as f64;
                Some((
                    r.t as f64 / 1e9,
                    row + (mi as f64 - macs.len() as f64 / 2.0) * 0.08,
                ))
            })
            .collect();
        chart
            .draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 1, c.filled())))
            .map_err(|e| anyhow!("{e}"))?
            .label(mac.clone())
            .legend(move |(x, y)| Circle::new((x, y), 4, c.filled()));
    }
    finish(&mut chart, &root)
}
