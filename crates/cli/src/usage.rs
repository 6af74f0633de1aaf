//! `kubectl computenet usage`: metered usage from the hub's ComputeUsage objects, summed by
//! queue, namespace, member, site or accelerator type over a time window.
//!
//! Pure: [`parse_time`] and [`window`] read the command line's times, [`build`] sums the
//! objects' rows (with [`computenet_api::usage::totals`], as the service does) and
//! [`table`] and [`csv`] print the report.

use crate::args::GroupBy;
use crate::table::Table;
use anyhow::{bail, Context};
use computenet_api::usage::{totals, ComputeUsage, UsageKey, UsageSum};
use computenet_core::usage::BudgetPeriod;
use k8s_openapi::jiff::Timestamp;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// The accelerator type of CPU-only usage, as the service's metrics label it.
pub const CPU: &str = "CPU";

/// What `--since` and `--until` accept, for error messages.
const TIME_FORMS: &str =
    "use RFC 3339 (2026-11-01T08:00:00Z), a UTC date (2026-11-01), a duration before now (30m, 24h, 7d) or `now`";

/// A time given on the command line, as Unix seconds: an RFC 3339 timestamp, a UTC date
/// (`2026-11-01`: its midnight), a duration before `now` (`90s`, `30m`, `24h`, `7d`, `2w`)
/// or `now`.
pub fn parse_time(text: &str, now: i64) -> anyhow::Result<i64> {
    let text = text.trim();
    if text.is_empty() {
        bail!("an empty time: {TIME_FORMS}");
    }
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(unit) = text.chars().last().and_then(unit_seconds) {
        let digits = &text[..text.len() - 1];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let seconds = digits
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(unit))
                .and_then(|s| now.checked_sub(s))
                .with_context(|| format!("{text:?} is too long ago"))?;
            return Ok(seconds);
        }
    }
    let is_date = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    let parsed = if is_date {
        format!("{text}T00:00:00Z").parse::<Timestamp>().map_err(|_| anyhow::anyhow!("{text:?} is not a valid date"))?
    } else {
        text.parse::<Timestamp>().map_err(|_| anyhow::anyhow!("{text:?} is not a time: {TIME_FORMS}"))?
    };
    Ok(parsed.as_second())
}

/// Seconds of a duration unit: s, m (minutes), h, d, w.
fn unit_seconds(unit: char) -> Option<i64> {
    match unit {
        's' => Some(1),
        'm' => Some(60),
        'h' => Some(3_600),
        'd' => Some(86_400),
        'w' => Some(7 * 86_400),
        _ => None,
    }
}

/// The start of the UTC month holding `now` (Unix seconds).
pub fn month_start(now: i64) -> i64 {
    let (start, _) = BudgetPeriod::Month.bounds(u64::try_from(now).unwrap_or(0));
    i64::try_from(start).unwrap_or(0)
}

/// The window `[since, until)` of `--since` and `--until` (defaults: the start of the
/// current UTC month, and `now`).
pub fn window(since: Option<&str>, until: Option<&str>, now: i64) -> anyhow::Result<(i64, i64)> {
    let since = match since {
        Some(text) => parse_time(text, now).context("--since")?,
        None => month_start(now),
    };
    let until = match until {
        Some(text) => parse_time(text, now).context("--until")?,
        None => now,
    };
    if since >= until {
        bail!("--since ({}) is not before --until ({}): the window is empty", rfc3339(since), rfc3339(until));
    }
    Ok((since, until))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(seconds: i64) -> String {
    Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

impl GroupBy {
    /// The key's name in JSON and CSV.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Namespace => "namespace",
            GroupBy::Queue => "queue",
            GroupBy::Member => "member",
            GroupBy::Site => "site",
            GroupBy::Accelerator => "accelerator",
        }
    }

    /// The value of this key in a row's labels.
    fn of(self, key: &UsageKey) -> &str {
        match self {
            GroupBy::Namespace => &key.namespace,
            GroupBy::Queue => &key.queue,
            GroupBy::Member => &key.member,
            GroupBy::Site => &key.site,
            GroupBy::Accelerator => key.accelerator.as_deref().unwrap_or(CPU),
        }
    }
}

/// Only the usage of this queue, namespace or member (each when given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub queue: Option<String>,
    pub namespace: Option<String>,
    pub member: Option<String>,
}

impl Filters {
    fn keep(&self, key: &UsageKey) -> bool {
        let matches = |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        matches(&self.queue, &key.queue)
            && matches(&self.namespace, &key.namespace)
            && matches(&self.member, &key.member)
    }
}

/// The usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    /// Start of the window, RFC 3339: buckets starting at or after it count.
    pub since: String,
    /// End of the window (excluded), RFC 3339.
    pub until: String,
    /// What the groups are keyed by, in order.
    pub by: Vec<&'static str>,
    /// One per group, by key.
    pub groups: Vec<UsageGroup>,
    /// All groups together.
    pub total: Figures,
    /// ComputeUsage objects read (including those with no row in the window).
    #[serde(skip)]
    pub objects: usize,
}

/// The usage of one group: its keys, then its figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageGroup {
    #[serde(flatten)]
    pub keys: GroupKeys,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A group's keys in `--by` order; serialised as `"queue": "research", ...` in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKeys(pub Vec<(GroupBy, String)>);

impl Serialize for GroupKeys {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (by, value) in &self.0 {
            map.serialize_entry(by.name(), value)?;
        }
        map.end()
    }
}

/// The figures of a sum of usage rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    /// Attempt-buckets: an attempt counts once per bucket it had time in.
    pub attempts: i64,
    pub gpu_hours: f64,
    pub cpu_core_hours: f64,
    /// Facility energy.
    #[serde(rename = "energyKWh")]
    pub energy_kwh: f64,
    /// The part of the energy apportioned from measured power.
    #[serde(rename = "measuredEnergyKWh")]
    pub measured_energy_kwh: f64,
    /// `measured_energy_kwh` as a percentage of `energy_kwh`; none without energy.
    pub measured_percent: Option<f64>,
    pub cost: f64,
    /// kg CO2e.
    pub carbon_kg: f64,
    /// Useful work, tera-FLOP.
    #[serde(rename = "usefulTFLOP")]
    pub useful_tflop: f64,
    /// Useful TFLOPS per facility watt achieved; none without energy.
    pub tflops_per_watt: Option<f64>,
}

/// `x` to 12 significant digits, so sums print as 10.56 rather than 10.560000000000002
/// (float noise is in the 16th digit; 12 keep the figures exact for any use).
fn significant(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

impl From<&UsageSum> for Figures {
    /// The figures of a sum, to 12 significant digits.
    fn from(sum: &UsageSum) -> Self {
        let a = &sum.amounts;
        let with_energy = a.energy_kwh > 0.0;
        Figures {
            attempts: sum.attempts,
            gpu_hours: significant(a.gpu_hours()),
            cpu_core_hours: significant(a.cpu_core_seconds / 3600.0),
            energy_kwh: significant(a.energy_kwh),
            measured_energy_kwh: significant(a.measured_energy_kwh),
            measured_percent: with_energy.then(|| significant(100.0 * a.measured_energy_kwh / a.energy_kwh)),
            cost: significant(a.cost),
            carbon_kg: significant(a.carbon_kg),
            useful_tflop: significant(a.useful_tflop),
            tflops_per_watt: with_energy.then(|| significant(a.tflops_per_watt())),
        }
    }
}

fn add(into: &mut UsageSum, sum: &UsageSum) {
    into.attempts = into.attempts.saturating_add(sum.attempts);
    into.amounts = into.amounts.plus(&sum.amounts);
}

/// The report: the rows of `objects` whose bucket starts in `[since, until)`, kept by
/// `filters`, summed per distinct value of the `by` keys (repeated keys count once).
pub fn build(objects: &[ComputeUsage], by: &[GroupBy], filters: &Filters, since: i64, until: i64) -> UsageReport {
    let mut keys: Vec<GroupBy> = Vec::new();
    for b in by {
        if !keys.contains(b) {
            keys.push(*b);
        }
    }
    if keys.is_empty() {
        keys.push(GroupBy::Queue);
    }
    let selected = objects.iter().filter(|o| filters.queue.as_deref().is_none_or(|q| q == o.spec.queue));
    let mut groups: BTreeMap<Vec<String>, UsageSum> = BTreeMap::new();
    let mut total = UsageSum::default();
    for (key, sum) in totals(selected, since, until).iter().filter(|(k, _)| filters.keep(k)) {
        let group = keys.iter().map(|b| b.of(key).to_string()).collect();
        add(groups.entry(group).or_default(), sum);
        add(&mut total, sum);
    }
    UsageReport {
        since: rfc3339(since),
        until: rfc3339(until),
        by: keys.iter().map(|b| b.name()).collect(),
        groups: groups
            .iter()
            .map(|(values, sum)| UsageGroup {
                keys: GroupKeys(keys.iter().copied().zip(values.iter().cloned()).collect()),
                figures: Figures::from(sum),
            })
            .collect(),
        total: Figures::from(&total),
        objects: objects.len(),
    }
}

/// The figure columns of the table.
const FIGURE_COLUMNS: [&str; 8] =
    ["ATTEMPTS", "GPU-HOURS", "CPU-CORE-HOURS", "ENERGY(kWh)", "MEASURED(%)", "COST", "CO2e(kg)", "TFLOPS/W"];

fn figure_cells(f: &Figures) -> Vec<String> {
    let optional = |v: Option<f64>, decimals: usize| v.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"));
    vec![
        f.attempts.to_string(),
        format!("{:.2}", f.gpu_hours),
        format!("{:.2}", f.cpu_core_hours),
        format!("{:.2}", f.energy_kwh),
        optional(f.measured_percent, 0),
        format!("{:.2}", f.cost),
        format!("{:.2}", f.carbon_kg),
        optional(f.tflops_per_watt, 4),
    ]
}

/// The report as a table: one row per group, then TOTAL.
pub fn table(report: &UsageReport) -> String {
    let window = format!("from {} to {}", report.since, report.until);
    if report.objects == 0 {
        return "No ComputeUsage objects on the hub: nothing is metered yet (the computenet service writes them as job attempts end).\n".to_string();
    }
    if report.groups.is_empty() {
        return format!(
            "No usage recorded {window} (buckets starting in the window; running attempts count when they end).\n"
        );
    }
    let titles: Vec<String> = report.by.iter().map(|b| b.to_uppercase()).collect();
    let header: Vec<&str> = titles.iter().map(String::as_str).chain(FIGURE_COLUMNS).collect();
    let mut t = Table::new(&header);
    for g in &report.groups {
        let keys = g.keys.0.iter().map(|(_, v)| if v.is_empty() { "-".to_string() } else { v.clone() });
        t.row(keys.chain(figure_cells(&g.figures)).collect());
    }
    let blanks = report.by.len().saturating_sub(1);
    t.row(
        std::iter::once("TOTAL".to_string())
            .chain(std::iter::repeat_n(String::new(), blanks))
            .chain(figure_cells(&report.total))
            .collect(),
    );
    format!("Usage {window}, by bucket start (UTC):\n{}", t.render())
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote, a line break or
/// leading or trailing space, quotes doubled.
pub fn csv_field(text: &str) -> String {
    let needs_quotes = text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A number for machines: no units, no thousands separators, no exponent, as exact as
/// the report has it.
fn csv_number(x: f64) -> String {
    format!("{x}")
}

/// One CSV line of figures after the key fields.
fn csv_line(keys: impl Iterator<Item = String>, f: &Figures) -> String {
    let optional = |v: Option<f64>| v.map(csv_number).unwrap_or_default();
    let fields = keys.chain([
        f.attempts.to_string(),
        csv_number(f.gpu_hours),
        csv_number(f.cpu_core_hours),
        csv_number(f.energy_kwh),
        csv_number(f.measured_energy_kwh),
        optional(f.measured_percent),
        csv_number(f.cost),
        csv_number(f.carbon_kg),
        csv_number(f.useful_tflop),
        optional(f.tflops_per_watt),
    ]);
    fields.collect::<Vec<_>>().join(",") + "\r\n"
}

/// The report as CSV (RFC 4180, CRLF line ends): a header line, one line per group, then
/// the TOTAL line (TOTAL in the first key column, the other keys empty). Percent and
/// TFLOPS/W are empty without energy; measured energy and useful TFLOP are there to
/// recompute them over any sum of lines.
pub fn csv(report: &UsageReport) -> String {
    let header = report.by.iter().copied().chain([
        "attempts",
        "gpu_hours",
        "cpu_core_hours",
        "energy_kwh",
        "measured_energy_kwh",
        "measured_percent",
        "cost",
        "carbon_kg",
        "useful_tflop",
        "tflops_per_watt",
    ]);
    let mut out = header.collect::<Vec<_>>().join(",") + "\r\n";
    for g in &report.groups {
        out.push_str(&csv_line(g.keys.0.iter().map(|(_, v)| csv_field(v)), &g.figures));
    }
    let total_keys = std::iter::once("TOTAL".to_string())
        .chain(std::iter::repeat_n(String::new(), report.by.len().saturating_sub(1)));
    out.push_str(&csv_line(total_keys, &report.total));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use computenet_api::usage::{ComputeUsageSpec, UsageAmounts, UsageRow};

    /// 2026-11-15T00:00:00Z.
    const DAY: i64 = 1_794_700_800;
    const HOUR: i64 = 3_600;

    fn row(start: i64, namespace: &str, member: &str, accelerator: Option<&str>, gpu_hours: f64) -> UsageRow {
        UsageRow {
            start,
            namespace: namespace.into(),
            member: member.into(),
            site: format!("site-{member}"),
            accelerator: accelerator.map(str::to_string),
            attempts: 1,
            amounts: UsageAmounts {
                gpu_seconds: gpu_hours * 3600.0,
                cpu_core_seconds: 7_200.0,
                energy_kwh: 2.0,
                measured_energy_kwh: 0.5,
                cost: 1.0,
                carbon_kg: 0.4,
                useful_tflop: 3_600.0,
            },
        }
    }

    fn object(queue: &str, rows: Vec<UsageRow>) -> ComputeUsage {
        ComputeUsage::new(
            &format!("{queue}.20261115"),
            ComputeUsageSpec {
                queue: queue.into(),
                day: "2026-11-15".into(),
                bucket_seconds: 3_600,
                total: Default::default(),
                rows,
                records: Vec::new(),
                records_dropped: 0,
                recorded: Vec::new(),
                compacted: false,
            },
        )
    }

    fn store() -> Vec<ComputeUsage> {
        vec![
            object(
                "research",
                vec![
                    row(DAY, "team-a", "ai-1", Some("A100-80G"), 8.0),
                    row(DAY + HOUR, "team-a", "ai-1", Some("A100-80G"), 4.0),
                    row(DAY + HOUR, "team-b", "ai-1", Some("H800"), 2.0),
                    row(DAY + 2 * HOUR, "team-a", "hpc-3", None, 0.0),
                ],
            ),
            object("batch", vec![row(DAY + HOUR, "team-a", "ai-1", Some("A100-80G"), 1.0)]),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn sums_by_queue_by_hand() {
        let r = build(&store(), &[GroupBy::Queue], &Filters::default(), DAY, DAY + 86_400);
        assert_eq!(r.by, ["queue"]);
        let groups: Vec<(String, i64, f64)> =
            r.groups.iter().map(|g| (g.keys.0[0].1.clone(), g.figures.attempts, g.figures.gpu_hours)).collect();
        assert_eq!(groups, [("batch".to_string(), 1, 1.0), ("research".to_string(), 4, 14.0)]);
        let research = &r.groups[1].figures;
        // Four rows of 2 core-hours, 2 kWh (0.5 measured), 1 of cost, 0.4 kg, 3600 TFLOP.
        assert!(close(research.cpu_core_hours, 8.0) && close(research.energy_kwh, 8.0));
        assert!(close(research.measured_energy_kwh, 2.0) && research.measured_percent == Some(25.0));
        assert!(close(research.cost, 4.0) && close(research.carbon_kg, 1.6));
        // 14400 TFLOP over 8 kWh = 28.8 MJ: 0.0005 TFLOPS/W.
        assert!(close(research.tflops_per_watt.expect("energy"), 14_400.0 / 28.8e6));
        assert_eq!(r.total.attempts, 5);
        assert!(close(r.total.gpu_hours, 15.0) && close(r.total.energy_kwh, 10.0) && close(r.total.cost, 5.0));
    }

    #[test]
    fn several_keys_cpu_rows_and_filters() {
        let by = [GroupBy::Accelerator, GroupBy::Namespace, GroupBy::Accelerator];
        let r = build(&store(), &by, &Filters::default(), DAY, DAY + 86_400);
        assert_eq!(r.by, ["accelerator", "namespace"], "a repeated key counts once");
        let keys: Vec<Vec<&str>> =
            r.groups.iter().map(|g| g.keys.0.iter().map(|(_, v)| v.as_str()).collect()).collect();
        assert_eq!(keys, [vec!["A100-80G", "team-a"], vec!["CPU", "team-a"], vec!["H800", "team-b"]]);
        assert!(close(r.groups[0].figures.gpu_hours, 13.0), "both queues' A100 rows of team-a");
        let only =
            Filters { queue: Some("research".into()), namespace: Some("team-a".into()), member: Some("ai-1".into()) };
        let r = build(&store(), &[GroupBy::Site], &only, DAY, DAY + 86_400);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].keys.0, [(GroupBy::Site, "site-ai-1".to_string())]);
        assert_eq!((r.total.attempts, r.total.gpu_hours), (2, 12.0));
    }

    #[test]
    fn a_bucket_counts_when_it_starts_in_the_window() {
        let gpu_hours = |since, until| build(&store(), &[], &Filters::default(), since, until).total.gpu_hours;
        assert_eq!(gpu_hours(DAY, DAY + HOUR), 8.0, "the first hour only: until is excluded");
        assert_eq!(gpu_hours(DAY + 1, DAY + 2 * HOUR), 7.0, "a bucket starting before since is left out");
        assert_eq!(gpu_hours(DAY + HOUR, DAY + HOUR + 1), 7.0, "one that starts just before until counts whole");
        assert_eq!(gpu_hours(DAY - 86_400, DAY), 0.0);
    }

    #[test]
    fn an_empty_store_or_window_says_so() {
        let empty = build(&[], &[GroupBy::Queue], &Filters::default(), DAY, DAY + HOUR);
        assert!(empty.groups.is_empty() && empty.total == Figures::default());
        assert!(table(&empty).starts_with("No ComputeUsage objects on the hub"));
        assert_eq!(
            csv(&empty),
            "queue,attempts,gpu_hours,cpu_core_hours,energy_kwh,measured_energy_kwh,measured_percent,cost,carbon_kg,useful_tflop,tflops_per_watt\r\nTOTAL,0,0,0,0,0,,0,0,0,\r\n"
        );
        let json = serde_json::to_value(&empty).expect("serialises");
        assert_eq!(json["groups"], serde_json::json!([]));
        assert_eq!((json["total"]["gpuHours"].as_f64(), json["total"]["tflopsPerWatt"].is_null()), (Some(0.0), true));
        let quiet = build(&store(), &[GroupBy::Queue], &Filters::default(), DAY - HOUR, DAY);
        assert_eq!(
            table(&quiet),
            "No usage recorded from 2026-11-14T23:00:00Z to 2026-11-15T00:00:00Z (buckets starting in the window; running attempts count when they end).\n"
        );
    }

    #[test]
    fn the_table_has_the_keys_the_figures_and_a_total() {
        let r = build(&store(), &[GroupBy::Queue, GroupBy::Namespace], &Filters::default(), DAY, DAY + 86_400);
        let text = table(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Usage from 2026-11-15T00:00:00Z to 2026-11-16T00:00:00Z, by bucket start (UTC):");
        let header: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "QUEUE",
                "NAMESPACE",
                "ATTEMPTS",
                "GPU-HOURS",
                "CPU-CORE-HOURS",
                "ENERGY(kWh)",
                "MEASURED(%)",
                "COST",
                "CO2e(kg)",
                "TFLOPS/W"
            ]
        );
        let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cells(lines[3]),
            ["research", "team-a", "3", "12.00", "6.00", "6.00", "25", "3.00", "1.20", "0.0005"]
        );
        assert_eq!(cells(lines[5]), ["TOTAL", "5", "15.00", "10.00", "10.00", "25", "5.00", "2.00", "0.0005"]);
        assert!(lines[5].starts_with("TOTAL "), "{text}");
    }

    #[test]
    fn csv_quotes_odd_names_and_prints_plain_numbers() {
        assert_eq!(csv_field("team-a"), "team-a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(" padded"), "\" padded\"");
        let research = Filters { queue: Some("research".into()), ..Filters::default() };
        let text = csv(&build(&store(), &[GroupBy::Site], &research, DAY, DAY + 86_400));
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines.len(), 5, "header, two sites, TOTAL, and nothing after the last line end: {text:?}");
        assert_eq!(lines[0].split(',').next(), Some("site"));
        assert_eq!(lines[1], "site-ai-1,3,14,6,6,1.5,25,3,1.2,10800,0.0005");
        assert_eq!(lines[2], "site-hpc-3,1,0,2,2,0.5,25,1,0.4,3600,0.0005");
        assert_eq!(lines[3], "TOTAL,4,14,8,8,2,25,4,1.6,14400,0.0005");
        assert_eq!(lines[4], "");
        let two = csv(&build(&store(), &[GroupBy::Queue, GroupBy::Namespace], &Filters::default(), DAY, DAY + 86_400));
        assert_eq!(two.lines().next(), Some("queue,namespace,attempts,gpu_hours,cpu_core_hours,energy_kwh,measured_energy_kwh,measured_percent,cost,carbon_kg,useful_tflop,tflops_per_watt"));
        assert_eq!(two.lines().last(), Some("TOTAL,,5,15,10,10,2.5,25,5,2,18000,0.0005"));
        let mut odd = store();
        odd[0].spec.rows[0].site = "west, \"hall 2\"".into();
        let r = build(&odd, &[GroupBy::Site], &Filters::default(), DAY, DAY + HOUR);
        assert_eq!(csv(&r).split("\r\n").nth(1), Some("\"west, \"\"hall 2\"\"\",1,8,2,2,0.5,25,1,0.4,3600,0.0005"));
    }

    #[test]
    fn json_keys_come_in_by_order_then_the_figures() {
        let r = build(&store(), &[GroupBy::Queue, GroupBy::Member], &Filters::default(), DAY, DAY + 86_400);
        let text = serde_json::to_string(&r.groups[0]).expect("serialises");
        assert!(text.starts_with("{\"queue\":\"batch\",\"member\":\"ai-1\",\"attempts\":1,\"gpuHours\":1.0"), "{text}");
        let v = serde_json::to_value(&r).expect("serialises");
        assert_eq!(v["since"], "2026-11-15T00:00:00Z");
        assert_eq!(v["until"], "2026-11-16T00:00:00Z");
        assert_eq!(v["by"], serde_json::json!(["queue", "member"]));
        assert_eq!(v["total"]["energyKWh"], 10.0);
        assert_eq!(v["groups"][1]["measuredPercent"], 25.0);
        assert!(v.get("objects").is_none());
        // Three rows of 0.4 kg add up to 1.2000000000000002 in floating point: reported as 1.2.
        assert_ne!(0.4 + 0.4 + 0.4, 1.2);
        let only = Filters { member: Some("ai-1".into()), namespace: Some("team-a".into()), ..Filters::default() };
        let research = build(&store(), &[GroupBy::Namespace], &only, DAY, DAY + 86_400);
        assert_eq!(research.total.attempts, 3);
        assert_eq!(serde_json::to_value(&research).expect("serialises")["total"]["carbonKg"], 1.2);
        // Yet exact enough to compare with the service's counters: GPU-hours x 3600 give
        // back the GPU-seconds.
        let mut odd = store();
        odd[1].spec.rows[0].amounts.gpu_seconds = 1_234.567_891;
        let batch = build(&odd, &[GroupBy::Queue], &Filters::default(), DAY, DAY + 86_400);
        let seconds = batch.groups[0].figures.gpu_hours * 3600.0;
        assert!((seconds - 1_234.567_891).abs() < 1e-8, "{seconds}");
    }

    #[test]
    fn times_rfc3339_dates_durations_and_now() {
        let now = DAY + 10 * HOUR + 30 * 60; // 2026-11-15T10:30:00Z
        assert_eq!(parse_time("2026-11-15T08:00:00Z", now).expect("rfc3339"), DAY + 8 * HOUR);
        assert_eq!(parse_time("2026-11-15T10:00:00+02:00", now).expect("offset"), DAY + 8 * HOUR);
        assert_eq!(parse_time("2026-11-15", now).expect("date"), DAY);
        assert_eq!(parse_time(" 2026-11-01 ", now).expect("date"), DAY - 14 * 86_400);
        assert_eq!(parse_time("30m", now).expect("minutes"), DAY + 10 * HOUR);
        assert_eq!(parse_time("24h", now).expect("hours"), now - 86_400);
        assert_eq!(parse_time("7d", now).expect("days"), now - 7 * 86_400);
        assert_eq!(parse_time("2w", now).expect("weeks"), now - 14 * 86_400);
        assert_eq!(parse_time("90s", now).expect("seconds"), now - 90);
        assert_eq!(parse_time("0h", now).expect("zero"), now);
        assert_eq!(parse_time("now", now).expect("now"), now);
        for bad in ["", "yesterday", "7 d", "-7d", "7y", "d", "2026-13-01", "2026-02-30", "2026-11-15T08:00:00"] {
            let err = format!("{:#}", parse_time(bad, now).expect_err(bad));
            assert!(err.contains(&format!("{:?}", bad.trim())) || err.starts_with("an empty time"), "{bad}: {err}");
        }
        assert!(format!("{:#}", parse_time("2026-02-30", now).unwrap_err()).contains("not a valid date"));
        assert!(format!("{:#}", parse_time("yesterday", now).unwrap_err()).contains("RFC 3339"));
        assert!(format!("{:#}", parse_time("99999999999999999d", now).unwrap_err()).contains("too long ago"));
    }

    #[test]
    fn the_default_window_is_this_month_so_far() {
        let now = DAY + 10 * HOUR; // 2026-11-15T10:00:00Z
        let november = DAY - 14 * 86_400;
        assert_eq!(month_start(now), november);
        assert_eq!(month_start(november), november, "the first second of a month is in it");
        assert_eq!(window(None, None, now).expect("default"), (november, now));
        assert_eq!(window(Some("7d"), Some("2026-11-15"), now).expect("given"), (now - 7 * 86_400, DAY));
        let err = format!("{:#}", window(Some("2026-11-15"), Some("2026-11-15"), now).unwrap_err());
        assert_eq!(
            err,
            "--since (2026-11-15T00:00:00Z) is not before --until (2026-11-15T00:00:00Z): the window is empty"
        );
        let err = format!("{:#}", window(Some("soon"), None, now).unwrap_err());
        assert!(err.starts_with("--since: \"soon\" is not a time"), "{err}");
        let err = format!("{:#}", window(None, Some("later"), now).unwrap_err());
        assert!(err.starts_with("--until: \"later\" is not a time"), "{err}");
    }
}
