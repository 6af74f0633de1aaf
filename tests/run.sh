#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting, clippy (warnings are errors),
# cargo deny (advisories, bans, licences, sources; tests/deny/README.md), Rust build and
# tests (unit, rule, property and CLI tests), the benchmarks compiled, the fuzz targets
# (bounded runs, fuzz/run.sh; cargo-fuzz under ~/.cache/computenet-tools), then the real test
# bed (hub + member Kubernetes control planes with KWOK nodes and, on the AI members, the
# JobSet / Kubeflow Trainer / Training Operator controllers; Slurm with slurmrestd; Prometheus)
# brought up from nothing, smoke-tested, driven end to end (API, Helm chart, scheduler, Slurm
# members, Prometheus efficiency, kubectl plugin, dashboard in headless Chromium) and torn down.
# Installs what it needs (Debian packages, Go-built control plane and controllers cached under
# ~/.cache/computenet-testbed and ~/.cache/computenet-jobkinds, cargo-deny under ~/.cache/computenet-tools).
#
#   tests/run.sh                 everything
#   tests/run.sh --no-testbed    Rust only (quick)
set -euo pipefail
cd "$(dirname "$0")/.."

testbed=1
for arg in "$@"; do
  case "$arg" in
    --no-testbed) testbed=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg (see --help)" >&2; exit 2 ;;
  esac
done

# Each step says how long the run has taken so far, so a slow stage shows in any CI log.
step() { printf '\n==> %s  [%d s]\n' "$*" "$SECONDS"; }

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install a Rust toolchain >= 1.85 (rustup)" >&2; exit 1; }

# The test bed's programs (Debian packages, the Go-built control plane and job-kind
# controllers: about 13 minutes of building on a fresh machine, a no-op once cached) are
# prepared in the background from the start, at a lower priority: the Rust steps keep the
# cores first, and the builds take what their serial links and single-threaded fuzz runs
# leave idle. The test bed step waits for them. `up.sh --prepare-only` is the same
# preparation `up.sh` makes before it starts anything, so the two cannot drift apart.
prep_pid=""
if [ "$testbed" = 1 ]; then
  prep_log=$(mktemp)
  # In a session of its own, so that an early failure stops the builds with it.
  setsid nice -n 10 tests/testbed/up.sh --prepare-only --jobkinds >"$prep_log" 2>&1 &
  prep_pid=$!
  trap 'kill -- -"$prep_pid" 2>/dev/null || true' EXIT
fi

step "format"
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "rustfmt not installed: skipped"
fi

step "clippy (-D warnings)"
cargo clippy --version >/dev/null 2>&1 || { echo "clippy not installed: rustup component add clippy" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo deny"
# cargo-deny from crates.io, built once into a cache folder. Its release profile asks for
# fat LTO in one codegen unit, minutes of serial linking on a cold machine for a tool that
# checks one lockfile: it is built without them.
deny_version=0.20.2
tools="${XDG_CACHE_HOME:-$HOME/.cache}/computenet-tools"
export PATH="$tools/bin:$PATH"
if [ "$(cargo-deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]; then
  env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-deny --locked --version "$deny_version" --root "$tools"
fi
tests/deny/check.sh

step "build (all targets, locked)"
cargo build --workspace --all-targets --locked

step "Rust tests"
cargo test --workspace --locked

step "fuzz (corpus replay on stable; each libFuzzer target ${COMPUTENET_FUZZ_SECONDS:-30}s on nightly)"
# COMPUTENET_FUZZ_SECONDS=0 skips the libFuzzer runs; COMPUTENET_REQUIRE_FUZZ=1 fails
# without nightly instead of replaying the corpus only (fuzz/README.md).
fuzz/run.sh

step "generated CRDs are committed"
cargo run --quiet --locked -p computenet -- crdgen --check

step "the README's first command, once"
cargo run --quiet --locked -p computenet -- simulate --jobs 300 >/dev/null

if [ "$testbed" = 1 ]; then
  step "test bed: up (builds and installs on first use)"
  prep_ok=1
  wait "$prep_pid" || prep_ok=0
  trap - EXIT
  echo "--- test bed programs, prepared in the background:"
  cat "$prep_log"
  rm -f "$prep_log"
  # up.sh runs the same steps again (a no-op for what is done): in the foreground, where
  # sudo can ask for a password, and failing there with the reason.
  [ "$prep_ok" = 1 ] || echo "--- preparing them in the background failed (above); up.sh tries again"
  cleanup() { tests/testbed/down.sh >/dev/null 2>&1 || true; }
  trap cleanup EXIT
  # Three members (two AI, one general-purpose) with untainted KWOK nodes for the e2e tests;
  # the AI members run the JobSet / Trainer / Training Operator controllers.
  tests/testbed/up.sh --members 3 --gpu-nodes 8 --no-taint --jobkinds
  step "test bed: smoke test"
  tests/testbed/smoke.sh
  step "test bed: job-kind controllers (JobSet, TrainJob, PyTorchJob under Pod Security restricted)"
  tests/testbed/jobkinds/verify.sh
  step "Slurm client against the real slurmrestd"
  (set -a; . tests/testbed/run/env; cargo test --locked -p computenet-members --test slurmrestd -- --ignored)
  # e2e SCRIPT...: a suite on the shared test bed, then the check that it left no pods or
  # batch jobs behind (they would hold devices the next suites expect free).
  e2e() { "$@"; tests/testbed/leftovers.sh "${1##*/}"; }
  step "e2e: the API on the hub"
  e2e tests/e2e/api.sh
  export COMPUTENET_BIN="$PWD/target/debug/computenet"
  # The suites' waits were written for cycles at least 500 ms apart (they also set
  # --interval-ms 500); the default of 1 s is what tests/e2e/bench-peer.sh measures.
  export COMPUTENET_MIN_INTERVAL_MS=500
  step "e2e: deployment (Helm chart, manifests, examples, Grafana dashboard)"
  e2e tests/e2e/helm.sh
  step "e2e: metrics and the dashboard (headless Chromium)"
  DASHBOARD_SCREENSHOT="${DASHBOARD_SCREENSHOT:-$(mktemp -d)/dashboard.png}" e2e tests/e2e/dashboard.sh
  step "e2e: computenet serve"
  e2e tests/e2e/scheduler.sh
  step "e2e: one hub view, measured profiles, dispatch backoff"
  e2e tests/e2e/service.sh
  step "e2e: Slurm members"
  e2e tests/e2e/slurm.sh
  step "e2e: efficiency from Prometheus"
  e2e tests/e2e/efficiency.sh
  step "e2e: kubectl computenet"
  e2e tests/e2e/plugin.sh
  step "e2e: faults (bad objects, slow and hostile members, lost replies, deposed leaders)"
  e2e tests/e2e/faults.sh
  step "e2e: tenancy (priorities, trusted status, isolated pods and Slurm users, credentials, web access)"
  e2e tests/e2e/tenancy.sh
  step "e2e: adaptive (moves, elastic resizes, graceful Slurm preemption, kill -9 mid-move)"
  e2e tests/e2e/adaptive.sh
  step "e2e: job kinds (JobSet, TrainJob, PyTorchJob queued by label, run by the members' controllers)"
  e2e tests/e2e/jobkinds.sh
  step "e2e: metering (usage records, budgets, fair share with memory, plugin totals vs counters)"
  e2e tests/e2e/metering.sh
  step "test bed: down"
  tests/testbed/down.sh
  trap - EXIT
fi
echo
echo "all test stages passed in $SECONDS s"
