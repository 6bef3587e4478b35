#!/usr/bin/env bash
# Runs the loom models (tests named `loom_tests::*` next to the code they
# check) in release mode with debug assertions, as sharded-slab does.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
exec cargo test -p arenapool --lib --release --target-dir target/loom -- loom_tests "$@"
