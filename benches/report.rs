//! Statistics, markdown tables and the CSV file.

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
}

impl Report {
    /// Print a line of the results (also kept for results.md).
    pub fn say(&mut self, s: &str) {
        println!("{s}");
        self.md.push_str(s);
        self.md.push('\n');
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
