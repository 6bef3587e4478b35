#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz / libFuzzer, AddressSanitizer) of
# arenapool and arenapool-alloc:
#   bin/fuzz.sh [SECONDS]      (default 30 seconds per target)
#
# Targets (fuzz/fuzz_targets/): pool_ops, bump_ops, slab_ops: random
# operation programs checked against a plain model after every step.
# Each run starts from the committed seeds in fuzz/corpus/<target>/, which
# it only reads: new inputs go to a scratch corpus under fuzz/target/.
# A failed model check (a panic), a sanitizer report (memory error or
# leak) or a hang (an input that runs past 10 s) fails the run; the input
# is left in fuzz/artifacts/<target>/ and the log in fuzz/target/fuzz-logs/.
# Replay one with `cargo +nightly fuzz run -O -a <target> <file>`, print it
# with `cargo +nightly fuzz fmt -O -a <target> <file>`.
#
# Needs the nightly toolchain and cargo-fuzz; installs what is missing
# (rustup, `cargo install cargo-fuzz --locked`). If it cannot, it shows the
# installer's error and prints `fuzz: SKIPPED (reason)`: with
# ARENAPOOL_STRICT=1 (as .ci/run sets) it then exits 1, otherwise 0 (and
# records the skip in $ARENAPOOL_SKIP_LOG when that is set).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-30}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: bin/fuzz.sh [SECONDS]" >&2
    exit 2
fi
targets=(pool_ops bump_ops slab_ops)

skip() {
    echo "fuzz: SKIPPED ($*)"
    if [ -n "${ARENAPOOL_SKIP_LOG:-}" ]; then
        echo "SKIPPED fuzz: $*" >>"$ARENAPOOL_SKIP_LOG"
    fi
    if [ "${ARENAPOOL_STRICT:-0}" = 1 ]; then
        echo "ARENAPOOL_STRICT=1: fuzzing did not run: $*" >&2
        exit 1
    fi
    exit 0
}

# Runs an installer quietly; on failure shows the end of what it said.
quietly() {
    local out
    if out=$("$@" 2>&1); then
        return 0
    fi
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/  /' >&2
    return 1
}

command -v rustup >/dev/null 2>&1 || skip "no rustup to get the nightly toolchain"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: installing the nightly toolchain"
    quietly rustup toolchain install nightly --profile minimal ||
        skip "cannot install the nightly toolchain"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    quietly cargo install cargo-fuzz --locked || skip "cannot install cargo-fuzz"
fi

# -O: optimised; -a: with debug assertions and overflow checks, as the
# crates' own tests run.
flags=(-O -a)
start=$(date +%s)
echo "fuzz: building ${targets[*]} ($(cargo fuzz --version))"
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s; ${secs} s per target"

logs=fuzz/target/fuzz-logs
mkdir -p "$logs"
passed=0
failed=0
for t in "${targets[@]}"; do
    work="fuzz/target/fuzz-corpus/$t"
    rm -rf "$work"
    mkdir -p "$work" "fuzz/corpus/$t"
    log="$logs/$t.log"
    # The first corpus directory receives new inputs; the seeds are read.
    if cargo +nightly fuzz run "${flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=failed
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ -z "$runs" ]; then
        runs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
    fi
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*\(cov: [0-9]* ft: [0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [ "$status" = ok ]; then
        passed=$((passed + 1))
        echo "fuzz: $t: ${runs:-?} executions in ${secs} s (${cov:-no stats}), no crash"
    else
        failed=$((failed + 1))
        echo "fuzz: $t: FAILED after ${runs:-?} executions; log: $log"
        {
            grep -E -A 4 "panicked at" "$log"
            grep -E -A 2 "ERROR: (AddressSanitizer|LeakSanitizer)" "$log"
            grep -E "ERROR: libFuzzer" "$log"
        } | head -n 30 || true
        grep -E "Test unit written to|^Output of|cargo fuzz (run|fmt|tmin)" "$log" | head -n 5 || true
    fi
done

echo "fuzz: done in $(($(date +%s) - start)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
