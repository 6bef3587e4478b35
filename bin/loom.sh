#!/usr/bin/env bash
# Runs the loom models (tests named `loom_tests::*` next to the code they
# check) in release mode with debug assertions, as sharded-slab does: the
# pool's free list, cache handshake and wait queue, and the allocators'
# region offset.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom -C debug-assertions"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
cargo test -p arenapool --lib --release --target-dir target/loom -- loom_tests "$@"
cargo test -p arenapool-alloc --lib --release --target-dir target/loom -- loom_tests "$@"
