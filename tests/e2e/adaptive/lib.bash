# Helpers of the adaptive groups (sourced after tests/e2e/lib.sh and use_testbed).
# shellcheck shell=bash

# podwatch KUBECONFIG UID OUT: records, with this machine's clock, every watch event of
# the pods of TrainingJob UID on a member: "EPOCH TYPE NAME ATTEMPT DELETING" per line.
# Runs in the background; its pid is appended to PIDS.
podwatch() {
  # shellcheck disable=SC2016
  KUBECONFIG=$1 UID_=$2 OUT=$3 setsid bash -c 'kubectl get pods -A -l "computenet.io/job-uid=$UID_" --watch --output-watch-events \
      -o jsonpath="{.type} {.object.metadata.name} {.object.metadata.labels.computenet\.io/attempt} {.object.metadata.deletionTimestamp}{\"\n\"}" 2>/dev/null |
      while read -r line; do echo "$(date +%s.%N) $line"; done >> "$OUT"' </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
}

# stop_all: ends the processes (and their process groups) this group started.
stop_all() {
  for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null; done
}


# pods_in_order FILE OLD NEW: every pod of attempt OLD was gone (DELETED) before the first
# pod of attempt NEW was seen (ADDED), and both were seen.
pods_in_order() {
  awk -v old="$2" -v new="$3" '
    $2 == "DELETED" && $4 == old { if ($1 > last_old) last_old = $1; seen_old = 1 }
    $2 == "ADDED" && $4 == new { if (first_new == "" || $1 < first_new) first_new = $1 }
    END {
      if (!seen_old || first_new == "") { print "old deleted seen: " seen_old ", new added: " first_new; exit 1 }
      printf "last pod of attempt %s gone %.3f s before the first of attempt %s\n", old, first_new - last_old, new
      exit !(last_old < first_new)
    }' "$1"
}

# serve_adaptive LOG ARGS...: computenet serve for one group, adapting every 5 s.
serve_adaptive() {
  local log=$1; shift
  setsid "$BIN" serve --kubeconfig "$HUB_KUBECONFIG" --interval-ms 500 --adapt-interval-s 5 "$@" >> "$log" 2>&1 &
  SERVE_PID=$!
  PIDS+=($SERVE_PID)
}

