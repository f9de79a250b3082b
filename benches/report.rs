//! Statistics, markdown tables, the CSV file and the SVG charts.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// Median with min and max over runs.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub med: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(v: &[f64]) -> Option<Stat> {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Some(Stat { med: median_sorted(&s), min: s[0], max: s[s.len() - 1], n: s.len() })
    }
    pub fn one(x: f64) -> Stat {
        Stat { med: x, min: x, max: x, n: 1 }
    }
}

fn median_sorted(s: &[f64]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    Stat::of(v).map(|s| s.med)
}

/// Distribution-free 95% confidence interval of the median (order
/// statistics, normal approximation of the binomial); None below 6 values.
pub fn median_ci(v: &[f64]) -> Option<(f64, f64)> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let n = s.len();
    if n < 6 {
        return None;
    }
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let h = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - h).floor().max(1.0) as usize).min(n);
    let hi = ((1.0 + n as f64 / 2.0 + h).ceil() as usize).clamp(1, n);
    Some((s[lo - 1], s[hi - 1]))
}

/// Nearest-rank percentile (p in 0..=100).
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

fn num(x: f64, dec: usize) -> String {
    format!("{x:.dec$}")
}

/// "12.3 [11.9–13.0]", or just the value when all runs agree / one run.
pub fn fmt(s: &Option<Stat>, dec: usize) -> String {
    match s {
        None => "–".into(),
        Some(s) => {
            let (m, lo, hi) = (num(s.med, dec), num(s.min, dec), num(s.max, dec));
            if s.n <= 1 || (lo == m && hi == m) {
                m
            } else {
                format!("{m} [{lo}–{hi}]")
            }
        }
    }
}

pub fn fmt_ratio(s: &Option<Stat>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n <= 1 || (s.min == s.max) => format!("{:.2}x", s.med),
        Some(s) => format!("{:.2}x [{:.2}–{:.2}]", s.med, s.min, s.max),
    }
}

pub struct CsvRow {
    figure: String,
    shim: String,
    metric: String,
    stat: Stat,
    unit: String,
}

#[derive(Default)]
pub struct Report {
    pub md: String,
    rows: Vec<CsvRow>,
    /// Rows dropped and why, printed at the end.
    pub notes: Vec<String>,
    /// Charts to write beside the CSV file.
    pub charts: Vec<Chart>,
    /// Lines `cost × x` for the charts, from a per-container cost (KiB)
    /// another figure measured: (name, color, cost).
    linear: Vec<(String, &'static str, Stat)>,
}

/// One line of a chart: (x, y, y min, y max) points, in x order.
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A line chart, one line per series (one per shim: a new shim is a new
/// series, nothing else changes).
pub struct Chart {
    pub file: String,
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Of y, for the legend.
    pub y_unit: String,
    pub series: Vec<Series>,
}

/// A round step for about `n` ticks up to `max`.
fn tick_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl Chart {
    /// The chart as a self-contained SVG document.
    pub fn svg(&self) -> String {
        let (w, h) = (760.0, 440.0);
        let (l, r, t, b) = (70.0, 20.0, 50.0, 55.0);
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let xmax = pts().map(|p| p.0).fold(0.0, f64::max).max(1.0);
        let ymax = pts().map(|p| p.3.max(p.1)).fold(0.0, f64::max).max(1e-6);
        let (xs, ys) = (tick_step(xmax, 8.0), tick_step(ymax, 6.0));
        let (xtop, ytop) = ((xmax / xs).ceil() * xs, (ymax / ys).ceil() * ys);
        let x = |v: f64| l + v / xtop * (w - l - r);
        let y = |v: f64| h - b - v / ytop * (h - t - b);
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(o, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            w / 2.0,
            esc(&self.title)
        );
        let mut v = 0.0;
        while v <= ytop + ys / 2.0 {
            let _ = writeln!(
                o,
                r##"<line x1="{l}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                w - r,
                l - 6.0,
                y(v) + 4.0,
                num(v, if ys < 1.0 { 1 } else { 0 }),
                yy = y(v)
            );
            v += ys;
        }
        let mut v = 0.0;
        while v <= xtop + xs / 2.0 {
            let _ = writeln!(
                o,
                r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{xx:.1}" y="{}" text-anchor="middle">{}</text>"##,
                h - b,
                h - b + 5.0,
                h - b + 19.0,
                num(v, 0),
                xx = x(v)
            );
            v += xs;
        }
        let _ = writeln!(o, r##"<line x1="{l}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##, w - r, h - b, h - b);
        let _ = writeln!(o, r##"<line x1="{l}" x2="{l}" y1="{t}" y2="{}" stroke="#333"/>"##, h - b);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (l + w - r) / 2.0,
            h - 12.0,
            esc(&self.x_label)
        );
        let _ = writeln!(
            o,
            r#"<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>"#,
            (t + h - b) / 2.0,
            (t + h - b) / 2.0,
            esc(&self.y_label)
        );
        for (i, s) in self.series.iter().enumerate() {
            let path: Vec<String> = s.points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect();
            let _ = writeln!(
                o,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                s.color,
                path.join(" ")
            );
            for p in &s.points {
                if p.3 > p.2 {
                    let _ = writeln!(
                        o,
                        r#"<line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="{}"/>"#,
                        y(p.2),
                        y(p.3),
                        s.color,
                        xx = x(p.0)
                    );
                }
                let _ = writeln!(o, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#, x(p.0), y(p.1), s.color);
            }
            let last = s
                .points
                .last()
                .map(|p| format!(" ({} {} at {})", num(p.1, 1), self.y_unit, num(p.0, 0)))
                .unwrap_or_default();
            let ly = t + 8.0 + i as f64 * 18.0;
            let _ = writeln!(
                o,
                r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="3"/><text x="{}" y="{}">{}{}</text>"#,
                l + 12.0,
                l + 36.0,
                s.color,
                l + 42.0,
                ly + 4.0,
                esc(&s.name),
                esc(&last)
            );
        }
        o.push_str("</svg>\n");
        o
    }
}

impl Report {
    /// Print a line of the results (also kept for results.md).
    pub fn say(&mut self, s: &str) {
        println!("{s}");
        self.md.push_str(s);
        self.md.push('\n');
    }

    /// A line `cost × containers` (cost in KiB per container, median with
    /// min and max) for the memory charts, however the figures are ordered:
    /// drawn by `finish_charts`.
    pub fn linear(&mut self, name: &str, color: &'static str, cost: Stat) {
        self.linear.push((name.into(), color, cost));
    }

    /// Adds the `linear` lines to every chart in MiB, at the x values of its
    /// first line.
    pub fn finish_charts(&mut self) {
        for c in self.charts.iter_mut().filter(|c| c.y_unit == "MiB") {
            let xs: Vec<f64> = c.series.first().map(|s| s.points.iter().map(|p| p.0).collect()).unwrap_or_default();
            for (name, color, s) in &self.linear {
                let at = |x: f64, kib: f64| x * kib / 1024.0;
                let points = xs.iter().map(|&x| (x, at(x, s.med), at(x, s.min), at(x, s.max))).collect();
                c.series.push(Series { name: name.clone(), color, points });
            }
        }
    }

    pub fn add(&mut self, figure: &str, shim: &str, metric: &str, stat: &Option<Stat>, unit: &str) {
        if let Some(s) = stat {
            self.rows.push(CsvRow {
                figure: figure.into(),
                shim: shim.into(),
                metric: metric.into(),
                stat: *s,
                unit: unit.into(),
            });
        }
    }

    /// A markdown table, columns padded so that it reads as well in a terminal.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        let ncol = header.len();
        let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in rows {
            for (i, c) in r.iter().enumerate().take(ncol) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| {
            let mut s = String::from("|");
            for (i, c) in cells.iter().enumerate() {
                let pad = w[i] - c.chars().count();
                if i == 0 {
                    let _ = write!(s, " {c}{} |", " ".repeat(pad));
                } else {
                    let _ = write!(s, " {}{c} |", " ".repeat(pad));
                }
            }
            s
        };
        self.say(&line(header.iter().map(|h| h.to_string()).collect()));
        let mut sep = String::from("|");
        for (i, wi) in w.iter().enumerate() {
            if i == 0 {
                let _ = write!(sep, "{}|", "-".repeat(wi + 2));
            } else {
                let _ = write!(sep, "{}:|", "-".repeat(wi + 1));
            }
        }
        self.say(&sep);
        for r in rows {
            let mut cells = r.clone();
            cells.resize(ncol, String::new());
            self.say(&line(cells));
        }
    }

    pub fn write_csv(&self, path: &Path) -> io::Result<()> {
        if let Some(d) = path.parent() {
            fs::create_dir_all(d)?;
        }
        let mut s = String::from("figure,shim,metric,median,min,max,unit,runs\n");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{}",
                csv(&r.figure),
                csv(&r.shim),
                csv(&r.metric),
                g(r.stat.med),
                g(r.stat.min),
                g(r.stat.max),
                csv(&r.unit),
                r.stat.n
            );
        }
        let tmp = path.with_extension("csv.tmp");
        fs::write(&tmp, s)?;
        fs::rename(&tmp, path)
    }
}

fn g(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.into()
    }
}
