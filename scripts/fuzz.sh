#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ the way `cargo fuzz build --dev --sanitizer none` does, and
# runs each for a bounded time, failing on the first crash. It needs only cargo: no cargo-fuzz
# to install (compiling it was a minute or two of every fresh CI machine) and no nightly, since
# without a sanitizer every flag cargo-fuzz passes is a stable `-C` flag. `cargo fuzz` itself
# still works on the same targets for longer local runs (fuzz/README.md).
#
# Usage: scripts/fuzz.sh [seconds per target, default 10] [target ...]   (default: all)
#        scripts/fuzz.sh build                                           (build only)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-10}
shift || true
triple=$(rustc -vV | sed -n 's/^host: //p')

# cargo-fuzz's instrumentation (src/project.rs of rust-fuzz/cargo-fuzz) for a --dev build
# without a sanitizer: libFuzzer's coverage counters, comparison tracing and stack depth,
# `cfg(fuzzing)`, debug assertions. `--target` keeps these flags off build scripts and proc
# macros. Dead code is stripped (cargo-fuzz keeps it by default): coverage of code no input
# can reach is not worth the longer link.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
-Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Cdebug-assertions"
export CARGO_FUZZ=1
cargo build --target "$triple" --bins
[ "$seconds" = build ] && exit 0

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -vx legate-fuzz)
fi
for target in "${targets[@]}"; do
  # New inputs go to a scratch corpus; corpus/<target> (the seeds) is only read.
  scratch=$(mktemp -d)
  mkdir -p "artifacts/$target"
  echo "-- $target (${seconds}s)"
  if ! "target/$triple/debug/$target" -artifact_prefix="artifacts/$target/" \
      -max_total_time="$seconds" "$scratch" "corpus/$target" >"$scratch.log" 2>&1; then
    tail -n 40 "$scratch.log"
    echo "fuzz target $target crashed: the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^Done ' "$scratch.log" || true
  rm -rf "$scratch" "$scratch.log"
done
