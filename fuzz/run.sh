#!/usr/bin/env bash
# The fuzz step of tests/run.sh (see fuzz/README.md):
#  1. on stable: the fuzz crate's tests: every committed corpus file replayed through every
#     target, and proptest over arbitrary and structured input;
#  2. on nightly: each libFuzzer target for COMPUTENET_FUZZ_SECONDS (default 30; 0 skips
#     this part), starting from the committed corpus. New inputs go to a scratch folder and
#     are not committed; a crash fails the step with its reproducer and the command to re-run it.
# A missing nightly toolchain is installed with rustup; where that fails, part 2 is skipped
# with a notice, unless COMPUTENET_REQUIRE_FUZZ=1.
#
#   fuzz/run.sh                 all targets
#   fuzz/run.sh quantity gres   only these
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${COMPUTENET_FUZZ_SECONDS:-30}"
require="${COMPUTENET_REQUIRE_FUZZ:-0}"
cargo_fuzz_version=0.13.2
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(quantity crd slurmrestd hostlist gres jobkinds usage watch)
case "$seconds" in ''|*[!0-9]*) echo "COMPUTENET_FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2 ;; esac

# Stable: the corpus as a regression suite, and the property tests. The main workspace's
# target folder is shared so that the dependencies built for it are reused.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --locked --target-dir "$target_dir" -- -D warnings
cargo test --manifest-path fuzz/Cargo.toml --locked --target-dir "$target_dir"

if [ "$seconds" = 0 ]; then
  echo "fuzz: COMPUTENET_FUZZ_SECONDS=0: libFuzzer runs skipped (corpus replayed on stable above)"
  exit 0
fi
# libFuzzer needs nightly: installed with rustup when missing (a minimal profile, about a minute).
if ! cargo +nightly --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal || true
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
  msg="fuzz: no nightly toolchain (rustup toolchain install nightly failed or rustup is missing): libFuzzer runs skipped; the corpus replay and property tests above ran on stable"
  if [ "$require" = 1 ]; then
    echo "$msg, but COMPUTENET_REQUIRE_FUZZ=1" >&2
    exit 1
  fi
  echo "$msg"
  exit 0
fi

# cargo-fuzz from crates.io, built once into the tools cache (about a minute).
tools="${XDG_CACHE_HOME:-$HOME/.cache}/computenet-tools"
export PATH="$tools/bin:$PATH"
if [ "$(cargo-fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" --root "$tools"
fi

# No sanitizer: the project's crates forbid unsafe code, so AddressSanitizer would find
# little and halve the speed; panics, overflow checks (debug assertions are on) and the
# targets' asserts are what fail. Built in fuzz/target (whatever CARGO_TARGET_DIR says),
# apart from the stable builds: the instrumented build shares nothing with them.
fuzz=(env -u CARGO_TARGET_DIR cargo +nightly fuzz)
build_flags=(--sanitizer none --debug-assertions)
for t in "${targets[@]}"; do
  "${fuzz[@]}" build "${build_flags[@]}" "$t"
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=("-dict=fuzz/dict/$t.dict")
  log="$scratch/$t.log"
  echo "fuzz: $t for ${seconds}s from fuzz/corpus/$t"
  # The scratch folder first: libFuzzer adds what it finds there, not to the committed corpus.
  if "${fuzz[@]}" run "${build_flags[@]}" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${dict[@]}" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    found=$(find "$scratch/$t" -type f | wc -l)
    echo "fuzz: $t ok: ${execs:-?} runs, ${rate:-?}/s, $found new inputs (not kept; see fuzz/README.md)"
  else
    failed=1
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY|^thread" "$log" | head -20 || true
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz: $t FAILED; full log below" >&2
    tail -60 "$log" >&2
    if [ -n "$artifact" ]; then
      echo "fuzz: reproducer: $artifact" >&2
      echo "fuzz: re-run it:  cargo +nightly fuzz run ${build_flags[*]} $t $artifact" >&2
      echo "fuzz: after the fix, keep it: cp $artifact fuzz/corpus/$t/regression-<what>" >&2
    fi
  fi
done
exit "$failed"
