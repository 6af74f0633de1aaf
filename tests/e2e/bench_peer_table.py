#!/usr/bin/env python3
"""The table of tests/e2e/bench-peer.sh, from the raw results of its runs.

    bench_peer_table.py OUT N SYSTEM...     (SYSTEM: a folder OUT/SYSTEM written by bench-peer.sh)

Per system folder: what, t0, t1, created.tsv (name, create sent, create returned), observed.tsv
(name, cluster, first seen dispatched), dispatched.tsv (computenet: name, cluster,
status.dispatchTime), cpu.txt (cpu_usage.py report), hub-req0/1 (hub
apiserver_request_total by "resource verb"), member-req0/1 (ai-1 and ai-3 totals), rss (VmHWM kB);
when the run dispatched all N: settled (seconds waited after the window for the hub's writes to
settle), cpu-settled.txt and hub-req2 (the same as cpu.txt and hub-req1, then).
"""
import os
import re
import sys
from datetime import datetime

TITLES = {
    "kueue-stock": "Kueue v0.17.0 stock",
    "kueue-nothrottle": "Kueue v0.17.0 no throttling",
    "computenet": "computenet",
}
SUBMITTED = {"kueue-stock": "jobs POST", "kueue-nothrottle": "jobs POST", "computenet": "trainingjobs POST"}


def read(d, name, default=""):
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:
        return default


def tsv(d, name):
    return [line.rstrip("\n").split("\t") for line in read(d, name).splitlines() if line.strip()]


def rfc3339(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, rest = s.split(".", 1)
        cut = min(i for i in (rest.find("+"), rest.find("-"), len(rest)) if i >= 0)
        s = f"{head}.{rest[:cut][:6].ljust(6, '0')}{rest[cut:]}"
    return datetime.fromisoformat(s).timestamp()


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    rank = -(-p * len(v) // 100)
    return v[min(len(v), max(1, int(rank))) - 1]


def counts(text):
    out = {}
    for line in text.splitlines():
        parts = line.rsplit(" ", 1)
        if len(parts) == 2:
            out[parts[0]] = float(parts[1])
    return out


def system(out, name, n):
    d = os.path.join(out, name)
    r = {"name": name, "what": read(d, "what").strip()}
    created = {row[0]: (float(row[1]), float(row[2])) for row in tsv(d, "created.tsv")}
    observed = {row[0]: (row[1], float(row[2])) for row in tsv(d, "observed.tsv") if len(row) > 2 and row[2]}
    # computenet: status.dispatchTime, when it created the member object (1 s resolution).
    recorded = {row[0]: (row[1], rfc3339(row[2])) for row in tsv(d, "dispatched.tsv") if len(row) > 2 and row[2]}
    t0 = min((s for s, _ in created.values()), default=float(read(d, "t0", "0") or 0))
    t1 = float(read(d, "t1", "0") or 0)
    k = len(observed)
    r["k"] = k
    r["submit"] = max(e for _, e in created.values()) - t0 if created else None
    r["created"] = len(created)
    last = max((t for _, t in observed.values()), default=None)
    r["all"] = (last - t0) if (k >= n and last) else None
    r["cut"] = t1 - t0
    r["rate"] = k / (last - t0) if k and last else 0.0
    lat = [t - created[j][1] for j, (_, t) in observed.items() if j in created]
    r["p50"], r["p99"] = pct(lat, 50), pct(lat, 99)
    rec_lat = [t - created[j][1] for j, (_, t) in recorded.items() if j in created]
    r["recorded"] = (pct(rec_lat, 50), pct(rec_lat, 99), len(rec_lat)) if recorded else None
    where = {}
    for c, _ in observed.values():
        where[c] = where.get(c, 0) + 1
    r["where"] = ", ".join(f"{c} {m}" for c, m in sorted(where.items()))
    def cpu_of(file):
        cpu = {}
        for line in read(d, file).splitlines():
            m = re.match(r"\s+(\S+)\s+([\d.]+) s", line)
            if m:
                cpu[m.group(1)] = float(m.group(2))
        return cpu

    r["cpu"] = cpu_of("cpu.txt")
    r["per"] = k or n
    h0 = counts(read(d, "hub-req0"))

    def hub_delta(file):
        h1 = counts(read(d, file))
        delta = {key: h1[key] - h0.get(key, 0) for key in h1 if h1[key] - h0.get(key, 0) > 0}
        own = SUBMITTED[name]
        if own in delta:
            delta[own] -= len(created)
        return delta

    r["hub"] = hub_delta("hub-req1")
    # After the window, once the hub's writes settled (all N dispatched only).
    settled = read(d, "settled").strip()
    r["settled"] = int(settled) if settled else None
    r["cpu_settled"] = cpu_of("cpu-settled.txt") if settled else {}
    r["hub_settled"] = hub_delta("hub-req2") if settled else {}
    m0 = [int(x) for x in read(d, "member-req0", "0 0").split()]
    m1 = [int(x) for x in read(d, "member-req1", "0 0").split()]
    r["members"] = sum(m1) - sum(m0)
    r["rss"] = {p: int(kb) / 1024 for p, kb in (line.split() for line in read(d, "rss").splitlines() if line.strip())}
    return r


WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")


def writes(delta):
    return sum(v for key, v in delta.items() if key.rsplit(" ", 1)[-1] in WRITE_VERBS)


def fmt(x, spec=".1f", none="-"):
    return none if x is None else format(x, spec)


def main(argv):
    out, n, names = argv[1], int(argv[2]), argv[3:]
    rs = [system(out, s, n) for s in names]
    rows = []

    def row(label, cells):
        rows.append([label] + cells)

    row("what ran", [r["what"] for r in rs])
    row("jobs submitted (create time, rate)", [
        f"{r['created']} in {fmt(r['submit'])} s ({fmt(r['created'] / r['submit'] if r['submit'] else None, '.0f')}/s)" for r in rs])
    row("time to all dispatched", [
        f"{fmt(r['all'])} s" if r["all"] is not None else f"**{r['k']} of {n} after {r['cut']:.0f} s**" for r in rs])
    row("jobs/s (dispatched / time from first create to last dispatch)", [fmt(r["rate"]) for r in rs])
    row("submit -> dispatch latency p50 / p99 (s)", [f"{fmt(r['p50'], '.2f')} / {fmt(r['p99'], '.2f')}" for r in rs])
    if any(r["recorded"] for r in rs):
        row("  the same from computenet's status.dispatchTime (1 s resolution, truncated; the jobs that had it at the end)", [
            f"{fmt(r['recorded'][0], '.2f')} / {fmt(r['recorded'][1], '.2f')} ({r['recorded'][2]} jobs)" if r["recorded"] else ""
            for r in rs])
    row("placements", [r["where"] for r in rs])
    row("window (first create to last dispatch or cut-off): length, CPU seconds of all processes", [
        f"{(r['all'] if r['all'] is not None else r['cut']):.0f} s, {sum(r['cpu'].values()):.0f} CPU-s" for r in rs])
    row("**CPU ms per dispatched job** (a cut-off run: all N jobs' work / the dispatched ones)", ["" for _ in rs])
    sched = {"kueue-stock": ["kueue@hub", "kueue@ai-1", "kueue@ai-3"], "kueue-nothrottle": ["kueue@hub", "kueue@ai-1", "kueue@ai-3"],
             "computenet": ["computenet"]}

    def ms(r, procs):
        return 1000 * sum(r["cpu"].get(p, 0.0) for p in procs) / r["per"]

    row("  scheduler process(es)", [
        f"{ms(r, sched[r['name']]):.1f}" + ("" if len(sched[r["name"]]) == 1 else
                                            " (" + " + ".join(f"{ms(r, [p]):.1f}" for p in sched[r["name"]]) + ")") for r in rs])
    for p in ["kube-apiserver@hub", "kube-apiserver@ai-1", "kube-apiserver@ai-3", "etcd"]:
        row(f"  {p}", [f"{ms(r, [p]):.1f}" for r in rs])
    row("  everything else (controller-managers, schedulers, KWOK)", [
        f"{1000 * sum(v for p, v in r['cpu'].items() if p not in sched[r['name']] and p not in ('kube-apiserver@hub', 'kube-apiserver@ai-1', 'kube-apiserver@ai-3', 'etcd')) / r['per']:.1f}"
        for r in rs])
    row("  total", [f"**{1000 * sum(r['cpu'].values()) / r['per']:.1f}**" for r in rs])
    row("  scheduler process(es), settled (the window and what followed until the hub's writes settled)", [
        f"{1000 * sum(r['cpu_settled'].get(p, 0.0) for p in sched[r['name']]) / r['per']:.1f} (+{r['settled']} s)"
        if r["settled"] is not None else "" for r in rs])
    row("peak RSS of the scheduler process(es), MiB", [
        f"{sum(r['rss'].values()):.0f}" + ("" if len(r["rss"]) < 2 else " (" + " + ".join(f"{v:.0f}" for v in r["rss"].values()) + ")")
        for r in rs])
    row("**hub writes per dispatched job** (POST, PUT, PATCH, APPLY, DELETE; without the submitter's creates)", [
        f"**{writes(r['hub']) / r['per']:.2f}**" for r in rs])
    row("  settled (the window and what followed until the hub's writes settled)", [
        f"**{writes(r['hub_settled']) / r['per']:.2f}** (+{r['settled']} s)" if r["settled"] is not None else "" for r in rs])
    row("**hub apiserver requests per dispatched job**", ["" for _ in rs])
    row("  total, without the submitter's creates", [f"**{sum(r['hub'].values()) / r['per']:.2f}**" for r in rs])
    keys = sorted({k for r in rs for k, v in r["hub"].items() if v / r["per"] >= 0.05},
                  key=lambda k: -max(r["hub"].get(k, 0) / r["per"] for r in rs))
    for key in keys:
        row(f"  {key}", [f"{r['hub'].get(key, 0) / r['per']:.2f}" if r["hub"].get(key, 0) else "" for r in rs])
    row("ai-1 + ai-3 apiserver requests per dispatched job (all clients)", [f"{r['members'] / r['per']:.1f}" for r in rs])

    print(f"\nN = {n} jobs per system; each on a fresh test bed (up.sh --members 3 --gpu-nodes 250 --no-taint --no-slurm --no-prometheus); "
          f"{os.cpu_count()} cores\n")
    def title(r):
        if r["name"] != "kueue-nothrottle":
            return TITLES.get(r["name"], r["name"])
        if "no client-side limit" in r["what"]:
            return "Kueue v0.17.0 no throttling (all client limits off)"
        return "Kueue v0.17.0 no throttling (worker clients = own client, 50 QPS / 100)"

    print("| | " + " | ".join(title(r) for r in rs) + " |")
    print("|---|" + "---|" * len(rs))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    print("""
Dispatched: a Job exists on ai-1/ai-3 with spec.suspend false (Kueue: its copy of the hub Job;
computenet: the member Job it made for the TrainingJob), at the time computenet-submit's watch
on both members saw it. Latency = that time minus when the submitter's create call returned,
all on this host's clock (sub-second; creationTimestamps have 1 s resolution and are not used).
CPU: utime+stime from /proc over the window submit -> last dispatch (or the cut-off), divided
by the dispatched jobs.
Hub requests: delta of the hub's apiserver_request_total over the same window, all clients,
minus the submitter's N creates; the bench's remaining own requests on the hub (two /metrics
reads, the submitter's discovery) are < 10 in all. Member requests include the observer's watch.""")


if __name__ == "__main__":
    main(sys.argv)
