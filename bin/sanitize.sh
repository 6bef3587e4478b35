#!/usr/bin/env bash
# Runs the tests of arenapool and arenapool-alloc under a sanitizer:
#   bin/sanitize.sh thread     # ThreadSanitizer
#   bin/sanitize.sh address    # AddressSanitizer (with LeakSanitizer)
# Needs nightly with rust-src (-Zbuild-std instruments std too, so TSan
# sees std's synchronisation). The compile-fail tests are left out: they
# check rustc's messages, not our code; so is tests/trim_rss.rs, which
# measures the process's resident memory, where a sanitizer's shadow
# memory (an eighth of what was written, for ASan) and quarantine count
# too (its trim races run in the library's tests, which are here).
#
# A TSan report can come after libtest has printed "ok"; the process then
# exits 66, and cargo fails on that exit code, as this script does.
#
# Under ThreadSanitizer it then runs tests/tokio_read_race.rs, a deliberate
# data race on a pool buffer during a tokio receive (ignored otherwise),
# and fails unless TSan reports it: the suppressions must not hide a race
# on our buffers.
set -euo pipefail
cd "$(dirname "$0")/.."
san="${1:?usage: bin/sanitize.sh thread|address}"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"
tests=()
for f in crates/pool/tests/*.rs; do
    name="$(basename "$f" .rs)"
    case "$name" in
    compile_fail | trim_rss) ;;
    *) tests+=(--test "$name") ;;
    esac
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
if [ "$san" = thread ]; then
    race=a_race_on_a_pool_buffer_during_a_tokio_receive_is_reported
    log="target/san-$san/deliberate-race.log"
    if run -p arenapool --test tokio_read_race -- --ignored --exact "$race" >"$log" 2>&1; then
        reported=false
    else
        grep -q "WARNING: ThreadSanitizer: data race" "$log" && grep -q "$race" "$log" &&
            reported=true || reported=false
    fi
    if ! $reported; then
        tail -n 40 "$log"
        echo "sanitizer thread: FAILED: the deliberate race on a pool buffer" \
            "(tests/tokio_read_race.rs) was not reported; log: $log"
        exit 1
    fi
    grep -m 1 "^SUMMARY: ThreadSanitizer" "$log"
    echo "sanitizer thread: the deliberate race on a pool buffer during a tokio receive was reported, as it must be"
fi
