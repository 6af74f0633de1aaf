# Shared settings and helpers of the test bed scripts (sourced by up.sh, down.sh, smoke.sh).
# shellcheck shell=bash disable=SC2034

TB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=${TESTBED_RUN_DIR:-$TB/run}
PIDS=$RUN/pids
LOGS=$RUN/logs

# Ports (all bound to 127.0.0.1). Member i (1-based) uses <BASE>+i-1 / <BASE>+i.
ETCD_PORT=${TESTBED_ETCD_PORT:-23790}
HUB_PORT=${TESTBED_HUB_PORT:-16443}
MEMBER_PORT_BASE=${TESTBED_MEMBER_PORT_BASE:-16444}      # apiserver of member i: BASE+i-1
KCM_PORT_BASE=${TESTBED_KCM_PORT_BASE:-16540}            # controller-manager: hub BASE, member i BASE+i
SCHED_PORT_BASE=${TESTBED_SCHEDULER_PORT_BASE:-16560}    # scheduler of member i: BASE+i
KWOK_PORT_BASE=${TESTBED_KWOK_PORT_BASE:-16580}          # kwok healthz/metrics of member i: BASE+i
SLURMCTLD_PORT=${TESTBED_SLURMCTLD_PORT:-16817}
SLURMD_PORT_BASE=${TESTBED_SLURMD_PORT_BASE:-17001}      # slurmd of node i: BASE+i-1
SLURMRESTD_PORT=${TESTBED_SLURMRESTD_PORT:-16820}
PROMETHEUS_PORT=${TESTBED_PROMETHEUS_PORT:-19090}

SLURM_CONF_FILE=$RUN/slurm/slurm.conf

command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fmt_ms() { printf '%d.%d' $(( $1 / 1000 )) $(( ($1 % 1000) / 100 )); }

# alive PID: the process exists and is not a zombie.
alive() {
  [ -n "${1:-}" ] && [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# Pid files are named <program>[@<instance>].pid; the program name is checked against
# /proc/PID/comm before any signal so that a recycled PID is never hit.
pidfile_pid() { # pidfile -> pid if that process is alive and runs the expected program
  local f=$1 p prog comm
  [ -s "$f" ] || return 1
  p=$(tr -dc '0-9' < "$f")
  alive "$p" || return 1
  prog=$(basename "$f" .pid); prog=${prog%%@*}
  comm=$(cat "/proc/$p/comm" 2>/dev/null) || return 1
  [ "$comm" = "${prog:0:15}" ] || return 1
  echo "$p"
}

# stop_pidfiles TIMEOUT_S PIDFILE...: SIGTERM all, wait up to TIMEOUT_S, then SIGKILL.
stop_pidfiles() {
  local t=$1 f p pids=() left
  shift
  for f in "$@"; do
    p=$(pidfile_pid "$f") || continue
    kill -TERM "$p" 2>/dev/null && pids+=("$p")
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  for _ in $(seq $(( t * 10 ))); do
    left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    [ $left = 0 ] && return 0
    sleep 0.1
  done
  for p in "${pids[@]}"; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  return 0
}

# Member layout: member i -> name, profile (ai | general).
member_profile() { if [ $(( $1 % 2 )) -eq 1 ]; then echo ai; else echo general; fi; }
member_name() { echo "$(member_profile "$1")-$1"; }
env_prefix() { echo "$1" | tr 'a-z-' 'A-Z_'; }   # ai-1 -> AI_1
