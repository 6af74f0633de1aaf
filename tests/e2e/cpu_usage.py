#!/usr/bin/env python3
"""CPU time used by the test bed's processes (and computenet) over a window.

    cpu_usage.py save FILE PIDDIR [NAME=PID ...]   record each process's CPU seconds so far
    cpu_usage.py report FILE PIDDIR [NAME=PID ...] [--per N]
                                                   print CPU seconds used since `save`, by
                                                   component, and per item when --per N

Processes are the test bed's PID files (PIDDIR/<name>.pid) plus the NAME=PID pairs given.
"""
import os
import sys


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes(piddir, pairs):
    out = {}
    for name in sorted(os.listdir(piddir)):
        if name.endswith(".pid"):
            with open(os.path.join(piddir, name)) as f:
                out[name[:-4]] = f.read().strip()
    for pair in pairs:
        name, _, pid = pair.partition("=")
        out[name] = pid
    return out


def main(argv):
    if len(argv) < 4 or argv[1] not in ("save", "report"):
        sys.exit(__doc__)
    mode, path, piddir, rest = argv[1], argv[2], argv[3], argv[4:]
    per = None
    if "--per" in rest:
        i = rest.index("--per")
        per = int(rest[i + 1])
        rest = rest[:i] + rest[i + 2:]
    now = {n: cpu_seconds(p) for n, p in processes(piddir, rest).items()}
    if mode == "save":
        with open(path, "w") as f:
            f.writelines(f"{n} {t}\n" for n, t in now.items() if t is not None)
        return
    with open(path) as f:
        before = {n: float(t) for n, t in (line.split() for line in f)}
    used = {n: t - before.get(n, 0.0) for n, t in now.items() if t is not None}
    total = sum(used.values())
    print(f"CPU seconds used in the window: {total:.1f} (this machine has {os.cpu_count()} cores)")
    for name, t in sorted(used.items(), key=lambda x: -x[1]):
        if t >= 0.05:
            line = f"  {name:34s} {t:7.1f} s"
            if per:
                line += f"  {1000 * t / per:6.1f} ms per job"
            print(line)


if __name__ == "__main__":
    main(sys.argv)
