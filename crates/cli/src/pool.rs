//! `kubectl computenet pool`: the pool's capacity and efficiency from MemberCluster status.

use crate::table::{self, number, or_dash, ratio, Table};
use computenet_api::conditions::{self, types};
use computenet_api::convert;
use computenet_api::member_cluster::AcceleratorCapacity;
use computenet_api::{view, MemberCluster};
use computenet_core::accelerator::CPU_ONLY;
use computenet_core::ClusterKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// The name of CPU capacity in the totals.
pub const CPU_CORES: &str = "CPU cores";

/// The pool report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolReport {
    /// Per (cluster kind, accelerator type or CPU cores).
    pub totals: Vec<TotalRow>,
    pub members: Vec<MemberRow>,
}

/// Capacity of one resource over the members of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TotalRow {
    pub kind: String,
    /// Accelerator type, or "CPU cores".
    pub resource: String,
    /// Members that have it.
    pub members: usize,
    /// Free on Ready, uncordoned members.
    pub free: i64,
    /// On all members.
    pub total: i64,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRow {
    pub name: String,
    pub kind: String,
    pub site: String,
    pub ready: bool,
    /// "Ready", or the reason it is not (the Ready condition's reason, or "NoStatus").
    pub state: String,
    /// The Ready condition's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub cordoned: bool,
    /// Schedulable nodes.
    pub nodes: Option<i32>,
    pub accelerators: Vec<AcceleratorCapacity>,
    pub gpus_free: i64,
    pub gpus_total: i64,
    pub cpus_free: Option<i64>,
    pub cpus_total: Option<i64>,
    /// Peak dense 16-bit TFLOPS of its accelerators (of its cores when it has none).
    pub peak_tflops: f64,
    /// Peak TFLOPS per kW of facility power (board power x PUE).
    #[serde(rename = "tflopsPerKW")]
    pub tflops_per_kw: Option<f64>,
    /// The measured PUE when the member reports one, else the configured one.
    pub pue: f64,
    /// Useful TFLOPS per facility watt from measured power and utilisation (算效), if measured.
    #[serde(rename = "measuredTflopsPerWatt", skip_serializing_if = "Option::is_none")]
    pub measured_tflops_per_watt: Option<f64>,
    #[serde(rename = "energyPricePerKWh")]
    pub energy_price_per_kwh: f64,
    #[serde(rename = "carbonGPerKWh", skip_serializing_if = "Option::is_none")]
    pub carbon_g_per_kwh: Option<f64>,
    /// RFC 3339.
    pub last_heartbeat: Option<String>,
    pub heartbeat_age_seconds: Option<i64>,
}

/// The Ready condition's (status, reason, message) of a member.
pub fn readiness(member: &MemberCluster) -> (bool, String, Option<String>) {
    let Some(status) = &member.status else {
        return (false, "NoStatus".into(), Some("the scheduler has not written a status yet".into()));
    };
    match conditions::find(&status.conditions, types::READY) {
        Some(c) if c.status == "True" => (true, types::READY.into(), None),
        Some(c) => (false, c.reason.clone(), Some(c.message.clone()).filter(|m| !m.is_empty())),
        None => (false, "Unknown".into(), None),
    }
}

fn free_total(text: Option<&str>) -> Option<(i64, i64)> {
    let (free, total) = text?.split_once('/')?;
    Some((free.trim().parse().ok()?, total.trim().parse().ok()?))
}

/// (kind rank, kind, 0 for accelerators and 1 for CPU, resource): the order of the totals.
type TotalKey = (usize, String, u8, String);

fn kind_rank(kind: &str) -> usize {
    ClusterKind::ALL.iter().position(|k| k.to_string() == kind).unwrap_or(ClusterKind::ALL.len())
}

/// The report: `now` is seconds since the epoch, for heartbeat ages.
pub fn build(members: &[MemberCluster], now: i64) -> PoolReport {
    let catalogue = view::catalogue(members);
    let mut sorted: Vec<&MemberCluster> = members.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rows = Vec::new();
    let mut totals: BTreeMap<TotalKey, (usize, i64, i64)> = BTreeMap::new();
    for m in sorted {
        let status = m.status.clone().unwrap_or_default();
        let (ready, state, message) = readiness(m);
        let kind = convert::cluster_kind(m.spec.kind).to_string();
        let usable = ready && !m.spec.cordoned;
        let cpus = free_total(status.cpus.as_deref());
        let measured = status.measured.clone().unwrap_or_default();
        let pue = measured.pue.unwrap_or(m.spec.efficiency.pue);
        let (mut tflops, mut watts) = (0.0, 0.0);
        for a in &status.accelerators {
            if let Some(spec) = catalogue.get(&a.accelerator) {
                tflops += spec.peak_tflops * a.total as f64;
                watts += spec.board_power_w * a.total as f64;
            }
            let e = totals.entry((kind_rank(&kind), kind.clone(), 0, a.accelerator.clone())).or_default();
            e.0 += 1;
            e.1 += if usable { a.free } else { 0 };
            e.2 += a.total;
        }
        if let Some((free, total)) = cpus {
            if status.accelerators.is_empty() {
                if let Some(spec) = catalogue.get(CPU_ONLY) {
                    tflops += spec.peak_tflops * total as f64;
                    watts += spec.board_power_w * total as f64;
                }
            }
            let e = totals.entry((kind_rank(&kind), kind.clone(), 1, CPU_CORES.to_string())).or_default();
            e.0 += 1;
            e.1 += if usable { free } else { 0 };
            e.2 += total;
        }
        rows.push(MemberRow {
            name: m.metadata.name.clone().unwrap_or_default(),
            kind,
            site: m.spec.site.clone(),
            ready,
            state,
            message,
            cordoned: m.spec.cordoned,
            nodes: status.nodes,
            gpus_free: status.accelerators.iter().map(|a| a.free).sum(),
            gpus_total: status.accelerators.iter().map(|a| a.total).sum(),
            accelerators: status.accelerators.clone(),
            cpus_free: cpus.map(|c| c.0),
            cpus_total: cpus.map(|c| c.1),
            peak_tflops: tflops,
            tflops_per_kw: (watts > 0.0).then(|| tflops / (watts * pue / 1000.0)),
            pue,
            measured_tflops_per_watt: measured.tflops_per_watt,
            energy_price_per_kwh: m.spec.efficiency.energy_price_per_kwh,
            carbon_g_per_kwh: m.spec.efficiency.carbon_g_per_kwh,
            heartbeat_age_seconds: status.last_heartbeat.as_ref().map(|t| table::seconds_since(t, now)),
            last_heartbeat: status.last_heartbeat.as_ref().map(table::time),
        });
    }
    PoolReport {
        totals: totals
            .into_iter()
            .map(|((_, kind, _, resource), (members, free, total))| TotalRow { kind, resource, members, free, total })
            .collect(),
        members: rows,
    }
}

/// The report as tables.
pub fn table(report: &PoolReport) -> String {
    if report.members.is_empty() {
        return "No MemberClusters on the hub.\n".to_string();
    }
    let mut totals = Table::new(&["KIND", "RESOURCE", "MEMBERS", "FREE", "TOTAL", "IN USE"]);
    for t in &report.totals {
        let used = if t.total > 0 {
            format!("{}%", number(100.0 * (t.total - t.free) as f64 / t.total as f64, 0))
        } else {
            "-".to_string()
        };
        totals.row(vec![
            t.kind.clone(),
            t.resource.clone(),
            t.members.to_string(),
            t.free.to_string(),
            t.total.to_string(),
            used,
        ]);
    }
    let mut members = Table::new(&[
        "MEMBER",
        "KIND",
        "SITE",
        "READY",
        "NODES",
        "GPUS FREE/TOTAL",
        "BY TYPE",
        "CPUS FREE/TOTAL",
        "PEAK TFLOPS",
        "TFLOPS/KW",
        "USEFUL TFLOPS/W",
        "PUE",
        "PRICE/KWH",
        "HEARTBEAT",
    ]);
    for m in &report.members {
        let ready = match (m.ready, m.cordoned) {
            (true, false) => "True".to_string(),
            (true, true) => "True (cordoned)".to_string(),
            (false, _) => format!("False ({})", m.state),
        };
        let by_type = m
            .accelerators
            .iter()
            .map(|a| format!("{} {}", a.accelerator, ratio(a.free, a.total)))
            .collect::<Vec<_>>()
            .join(", ");
        members.row(vec![
            m.name.clone(),
            m.kind.clone(),
            m.site.clone(),
            ready,
            or_dash(m.nodes),
            if m.gpus_total > 0 { ratio(m.gpus_free, m.gpus_total) } else { "-".to_string() },
            if by_type.is_empty() { "-".to_string() } else { by_type },
            match (m.cpus_free, m.cpus_total) {
                (Some(f), Some(t)) => ratio(f, t),
                _ => "-".to_string(),
            },
            number(m.peak_tflops, 1),
            or_dash(m.tflops_per_kw.map(|e| number(e, 1))),
            or_dash(m.measured_tflops_per_watt.map(|e| number(e, 3))),
            number(m.pue, 2),
            number(m.energy_price_per_kwh, 3),
            or_dash(m.heartbeat_age_seconds.map(|s| format!("{} ago", table::age(s)))),
        ]);
    }
    format!("{}\n{}", totals.render(), members.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn totals_by_kind_and_type_count_free_only_where_usable() {
        let mut down = fixtures::member("ai-east", "AI", "east", &[("H800", 8, 32, 8)], (100, 128), false);
        down.spec.efficiency.pue = 1.4;
        let members = vec![
            fixtures::member("ai-west", "AI", "west", &[("A100-80G", 20, 32, 8), ("H800", 8, 32, 8)], (200, 256), true),
            down,
            fixtures::member("general-west", "General", "west", &[], (900, 1024), true),
        ];
        let report = build(&members, fixtures::NOW);
        let rows: Vec<(&str, &str, usize, i64, i64)> =
            report.totals.iter().map(|t| (t.kind.as_str(), t.resource.as_str(), t.members, t.free, t.total)).collect();
        assert_eq!(
            rows,
            vec![
                ("General", CPU_CORES, 1, 900, 1024),
                ("AI", "A100-80G", 1, 20, 32),
                ("AI", "H800", 2, 8, 64),
                ("AI", CPU_CORES, 2, 200, 384),
            ]
        );
        let west = &report.members[1];
        assert_eq!((west.name.as_str(), west.gpus_free, west.gpus_total, west.ready), ("ai-west", 28, 64, true));
        // 32 x 312 + 32 x 989 TFLOPS over (32 x 400 + 32 x 700) W x PUE 1.1.
        assert!((west.peak_tflops - 41_632.0).abs() < 1e-6);
        let expected = 41_632.0 / (35_200.0 * 1.1 / 1000.0);
        assert!((west.tflops_per_kw.expect("has devices") - expected).abs() < 1e-6);
        assert_eq!(west.heartbeat_age_seconds, Some(5));
        assert_eq!(report.members[0].state, "Unreachable");
        let general = &report.members[2];
        assert!((general.peak_tflops - 102.4).abs() < 1e-9, "cores count for a CPU-only member");
    }

    #[test]
    fn the_table_shows_every_member_and_the_totals() {
        let members = vec![
            fixtures::member("ai-west", "AI", "west", &[("A100-80G", 20, 32, 8), ("H800", 8, 32, 8)], (200, 256), true),
            fixtures::member("ai-east", "AI", "east", &[("H800", 8, 32, 8)], (100, 128), false),
        ];
        let text = table(&build(&members, fixtures::NOW));
        assert!(text.starts_with("KIND "), "{text}");
        let row = text.lines().find(|l| l.starts_with("ai-west")).expect("member row");
        for cell in ["AI", "west", "True", "28/64", "A100-80G 20/32, H800 8/32", "200/256", "5s ago"] {
            assert!(row.contains(cell), "{cell} missing in {row}");
        }
        let east = text.lines().find(|l| l.starts_with("ai-east")).expect("member row");
        assert!(east.contains("False (Unreachable)"), "{east}");
        assert_eq!(table(&build(&[], 0)), "No MemberClusters on the hub.\n");
    }

    #[test]
    fn members_without_status_are_listed_as_such() {
        let mut m = fixtures::member("new", "HPC", "north", &[], (0, 0), true);
        m.status = None;
        let report = build(&[m], fixtures::NOW);
        assert_eq!((report.members[0].ready, report.members[0].state.as_str()), (false, "NoStatus"));
        assert!(report.totals.is_empty());
    }
}
