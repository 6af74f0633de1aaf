//! Aligned text columns, kubectl style, and the formatting of numbers, times and ages.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A table of text cells printed in aligned columns three spaces apart.
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.push_str(&" ".repeat(w - width(cell) + 3));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `value` or "-".
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A number with at most `decimals` decimals, trailing zeros dropped.
pub fn number(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A duration for people: "45s", "12m", "3h 5m", "2d 4h".
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    let s = seconds.round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) if m < 10 && s % 60 > 0 => format!("{m}m {}s", s % 60),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// An age as kubectl prints it: "45s", "12m", "3h", "2d".
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Seconds since the epoch as RFC 3339.
pub fn timestamp(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .map_or_else(|| seconds.to_string(), |t| t.to_string())
}

/// A time of an object as RFC 3339, to the second, as the apiserver and kubectl show it.
pub fn time(t: &Time) -> String {
    k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", t.0).unwrap_or_else(|_| t.0.to_string())
}

/// Seconds from `t` to `now` (seconds since the epoch): an age, negative for a future time.
pub fn seconds_since(t: &Time, now: i64) -> i64 {
    now.saturating_sub(t.0.as_second())
}

/// "free/total".
pub fn ratio(free: i64, total: i64) -> String {
    format!("{free}/{total}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_three_spaces_apart() {
        let mut t = Table::new(&["NAME", "GPUS"]);
        t.row(vec!["ai-1".into(), "64/64".into()]);
        t.row(vec!["general-west".into()]);
        assert_eq!(t.render(), "NAME           GPUS\nai-1           64/64\ngeneral-west\n");
    }

    #[test]
    fn durations_and_ages_read_like_kubectl() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(101.0), "1m 41s");
        assert_eq!(duration(720.0 + 41.0), "12m");
        assert_eq!(duration(3600.0 + 5.0 * 60.0), "1h 5m");
        assert_eq!(duration(2.0 * 86_400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(duration(f64::NAN), "-");
        assert_eq!(
            (age(30), age(600), age(3 * 3600), age(3 * 86_400)),
            ("30s".into(), "10m".into(), "3h".into(), "3d".into())
        );
    }

    #[test]
    fn numbers_drop_trailing_zeros() {
        assert_eq!(number(1.50, 2), "1.5");
        assert_eq!(number(2.0, 3), "2");
        assert_eq!(number(1234.5678, 1), "1234.6");
    }

    #[test]
    fn times_print_as_the_apiserver_writes_them() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        let minute = Time(Timestamp::from_second(60).expect("valid"));
        assert_eq!(time(&minute), "1970-01-01T00:01:00Z");
        assert_eq!(serde_json::to_value(&minute).expect("serialises"), time(&minute).as_str());
        let fraction = Time(Timestamp::new(60, 500_000_000).expect("valid"));
        assert_eq!(time(&fraction), "1970-01-01T00:01:00Z", "whole seconds, like the apiserver");
        assert_eq!((seconds_since(&minute, 90), seconds_since(&minute, 0)), (30, -60));
    }
}
