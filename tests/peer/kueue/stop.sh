#!/usr/bin/env bash
# Stop the Kueue processes of start.sh (by pid file, program name checked first). Objects stay:
# deleting the benchmark's namespace after Kueue stopped hangs on the Workloads' finalizers, so
# the benchmark starts every run on a fresh test bed instead.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../testbed/lib.sh
. "$here/../../testbed/lib.sh"
stop_pidfiles 10 "$RUN"/kueue/pids/kueue@*.pid
rm -f "$RUN"/kueue/pids/kueue@*.pid
