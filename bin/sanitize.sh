#!/usr/bin/env bash
# Runs the tests of arenapool and arenapool-alloc under a sanitizer:
#   bin/sanitize.sh thread     # ThreadSanitizer
#   bin/sanitize.sh address    # AddressSanitizer (with LeakSanitizer)
# Needs nightly with rust-src (-Zbuild-std instruments std too, so TSan
# sees std's synchronisation). The compile-fail tests are left out: they
# check rustc's messages, not our code.
#
# A TSan report can come after libtest has printed "ok"; the process then
# exits 66, and cargo fails on that exit code, as this script does.
set -euo pipefail
cd "$(dirname "$0")/.."
san="${1:?usage: bin/sanitize.sh thread|address}"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
tests=()
for f in crates/pool/tests/*.rs; do
    name="$(basename "$f" .rs)"
    [ "$name" = compile_fail ] || tests+=(--test "$name")
done
export RUSTFLAGS="${RUSTFLAGS:-} -Zsanitizer=$san"
export RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -Zsanitizer=$san"
# Tests that ask for impossible allocations expect null, not a report.
# tokio's epoll hand-off is invisible to TSan: see the suppressions file.
export TSAN_OPTIONS="${TSAN_OPTIONS:-} allocator_may_return_null=1 halt_on_error=1 suppressions=$PWD/bin/tsan-suppressions.txt"
export ASAN_OPTIONS="${ASAN_OPTIONS:-} allocator_may_return_null=1 detect_leaks=1"
run() {
    cargo +nightly test -Zbuild-std --target "$host" --target-dir "target/san-$san" "$@"
}
run -p arenapool --lib "${tests[@]}"
# The io_uring tests (they skip where the kernel has no io_uring). The
# sanitizers do not see the kernel's writes, only ours around them.
run -p arenapool --features io-uring --test uring
run -p arenapool-alloc --lib --tests
echo "sanitizer $san: all tests passed"
