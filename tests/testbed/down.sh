#!/usr/bin/env bash
# Stop everything up.sh started (by pid file only) and remove the run folder.
# Idempotent: exits 0 when nothing is up. Touches nothing else on the machine.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ ! -e "$RUN" ]; then
  echo "test bed is not up (no $RUN)"
  exit 0
fi
t0=$(now_ms)
shopt -s nullglob

# Slurm: cancel jobs first so that slurmstepd and job processes end cleanly.
if [ -e "$SLURM_CONF_FILE" ]; then
  export SLURM_CONF=$SLURM_CONF_FILE
  if pidfile_pid "$PIDS/slurmctld.pid" >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
      echo "$jobs" | xargs -r timeout 10 scancel 2>/dev/null
      for _ in $(seq 50); do
        [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break
        sleep 0.2
      done
    fi
  fi
fi

# Clients first, then the servers they talk to. The job-kind controllers (up.sh --jobkinds)
# before anything else, so that they never see their apiserver vanish mid-reconcile.
# computenet.pid: the `computenet serve` of tests/demo.sh.
stop_pidfiles 10 "$PIDS"/jobset-controller@*.pid "$PIDS"/trainer-controller-manager@*.pid \
  "$PIDS"/training-operator@*.pid
stop_pidfiles 10 "$PIDS"/computenet.pid
stop_pidfiles 10 "$PIDS"/kwok@*.pid "$PIDS"/kube-scheduler@*.pid "$PIDS"/kube-controller-manager@*.pid \
  "$PIDS"/prometheus.pid "$PIDS"/slurmrestd.pid "$PIDS"/slurmd@*.pid
stop_pidfiles 10 "$PIDS"/kube-apiserver@*.pid "$PIDS"/slurmctld.pid
stop_pidfiles 10 "$PIDS"/etcd.pid "$PIDS"/munged.pid

# Safety net: leftover slurmstepd of THIS cluster (found by SLURM_CONF in their
# environment) and their descendants (the job processes).
descendants() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do descendants "$c"; echo "$c"; done; }
for e in /proc/[0-9]*/environ; do
  p=${e#/proc/}; p=${p%/environ}
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = slurmstepd ] || continue
  tr '\0' '\n' < "$e" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF_FILE" || continue
  # shellcheck disable=SC2046
  kill -KILL $(descendants "$p") "$p" 2>/dev/null
done

# Anything still alive from our pid files is reported, not ignored.
left=0
for f in "$PIDS"/*.pid; do
  if p=$(pidfile_pid "$f"); then echo "down.sh: still running: $(basename "$f" .pid) (pid $p)" >&2; left=1; fi
done
rm -rf "$RUN"
echo "test bed stopped in $(fmt_ms $(( $(now_ms) - t0 ))) s"
exit $left
