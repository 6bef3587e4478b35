#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz / libFuzzer, AddressSanitizer) of
# arenapool and arenapool-alloc:
#   bin/fuzz.sh [SECONDS]                       every target, SECONDS each (default 30)
#   bin/fuzz.sh --campaign HOURS [--runs N] [TARGET...]
#
# Targets (fuzz/fuzz_targets/, bodies in fuzz/src/): pool_ops, bump_ops,
# slab_ops: random operation programs checked against a plain model after
# every step. `cargo test --manifest-path fuzz/Cargo.toml` replays the
# committed corpus and crashes on stable (fuzz/tests/).
#
# Short runs (the default, as .ci/run uses it) start from the committed
# seeds in fuzz/corpus/<target>/, which they only read: new inputs go to a
# scratch corpus under fuzz/target/.
#
# A campaign runs the targets one after another (one process, one core at
# a time), HOURS in all split evenly between them (HOURS may be a fraction,
# e.g. 0.5), each stopping early after N executions with --runs N. Each
# target keeps a persistent corpus in fuzz/target/campaign/<target>/ (a
# later campaign goes on from it) and a log in fuzz/target/campaign/<target>.log;
# afterwards the new inputs are minimised into fuzz/corpus/<target>/ (libFuzzer's
# -merge=1 over the committed seeds and the campaign corpus: a smallest set
# with the same coverage), to be reviewed and committed. It prints one line
# per target (executions, executions per second, coverage) and appends them
# to fuzz/target/campaign/summary.txt. Run it detached with, for example,
#   nohup bin/fuzz.sh --campaign 6 > fuzz/target/campaign.out 2>&1 &
#
# A failed model check (a panic), a sanitizer report (memory error or
# leak), a hang (an input that runs past 10 s, 60 s in a campaign) or
# libFuzzer turning its leak checks off (after 1000 runs that allocate more
# than they free: the target would no longer find leaks) fails the run;
# the input is left in fuzz/artifacts/<target>/. Replay one with
# `cargo +nightly fuzz run -O -a <target> <file>`, print it with
# `cargo +nightly fuzz fmt -O -a <target> <file>`.
#
# Needs the nightly toolchain and cargo-fuzz; installs what is missing
# (rustup, `cargo install cargo-fuzz --locked`). If it cannot, it shows the
# installer's error and prints `fuzz: SKIPPED (reason)`: with
# ARENAPOOL_STRICT=1 (as .ci/run sets) it then exits 1, otherwise 0 (and
# records the skip in $ARENAPOOL_SKIP_LOG when that is set).
set -euo pipefail
cd "$(dirname "$0")/.."

# ---- arguments ----
all_targets=(pool_ops bump_ops slab_ops)
usage() {
    echo "usage: bin/fuzz.sh [SECONDS] | bin/fuzz.sh --campaign HOURS [--runs N] [TARGET...]" >&2
    exit 2
}
campaign=false
secs=30
runs=""
targets=()
if [ "${1:-}" = --campaign ]; then
    campaign=true
    hours="${2:-}"
    [[ "$hours" =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage
    shift 2
    while [ $# -gt 0 ]; do
        case "$1" in
        --runs)
            runs="${2:-}"
            [[ "$runs" =~ ^[1-9][0-9]*$ ]] || usage
            shift 2
            ;;
        pool_ops | bump_ops | slab_ops)
            targets+=("$1")
            shift
            ;;
        *) usage ;;
        esac
    done
    [ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
    secs=$(awk -v h="$hours" -v n=${#targets[@]} 'BEGIN { s = int(h * 3600 / n); print (s < 1 ? 1 : s) }')
else
    [ $# -le 1 ] || usage
    secs="${1:-30}"
    if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
        usage
    fi
    targets=("${all_targets[@]}")
fi

# ---- toolchain (nightly, cargo-fuzz) ----
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

# ---- fuzzing ----
# -O: optimised; -a: with debug assertions and overflow checks, as the
# crates' own tests run. --no-trace-compares: no callback on every
# comparison (libFuzzer uses them to solve magic values, which these
# targets do not have: `arbitrary` maps any bytes onto an operation); with
# them, 35% of the samples of a bump_ops replay were in those callbacks.
flags=(-O -a --no-trace-compares)
# AddressSanitizer settings that cost much and find nothing these targets
# can have:
# - detect_stack_use_after_return: a fake stack frame per call; safe Rust
#   cannot return a pointer to a dead frame, and our unsafe code never
#   hands out stack addresses;
# - malloc_context_size=4 (30 by default): a shorter stack trace recorded
#   at every malloc and free; a report still names the faulting access,
#   and replaying the input left in fuzz/artifacts/ (with the default
#   settings) gives the full allocation and free stacks. Not 0: without
#   a stack LeakSanitizer reports no leak, and libFuzzer then turns its
#   leak checks off (seen with a deliberate leak in bump_ops: found with
#   2 frames, 4 and the default 30, never with 0);
# - quarantine_size_mb=16 (256 by default): the last 16 MiB of freed
#   memory is still held back, so a recent use after free is still caught
#   (a planted one in bump_ops was), but a run no longer cycles through
#   256 MiB of fresh pages.
# Together with --no-trace-compares: from 2,554 to 5,097 executions per
# second for bump_ops, 1,224 to 6,697 for slab_ops, 1,638 to 3,632 for
# pool_ops (15 s runs from the 12 seeds each target had before its first
# campaign, 2-vCPU VM, nothing else running).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=0:malloc_context_size=4:quarantine_size_mb=16}"
# A hang is an input that runs past 10 s (60 s in a campaign: over hours on
# a shared machine, a stall of the whole machine outlasted 10 s once, for an
# input that runs in 4 ms).
if $campaign; then timeout=60; else timeout=10; fi
libfuzzer=(-timeout=$timeout -rss_limit_mb=4096 -print_final_stats=1)
# 64 operations (all a target runs) fit in well under 2 KiB; longer inputs
# only cost time.
max_len=-max_len=2048
start=$(date +%s)
echo "fuzz: building ${targets[*]} ($(cargo fuzz --version))"
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s; ${secs} s per target${runs:+, at most $runs executions each}"

# Prints "RUNS SECONDS EXEC_PER_S COV FT" from a libFuzzer log (? where
# missing).
stats() {
    local log=$1 runs took rate cov ft
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    # No "Done" line after a crash: the time the run took.
    [ -n "$took" ] || took=$(($(date +%s) - run_start))
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*\(DONE\|pulse\|NEW\|REDUCE\|INITED\)[[:space:]]*cov: \([0-9]*\).*/\2/p' "$log" | tail -n 1)
    ft=$(sed -n 's/^#[0-9]*[[:space:]]*\(DONE\|pulse\|NEW\|REDUCE\|INITED\)[[:space:]]*cov: [0-9]* ft: \([0-9]*\).*/\2/p' "$log" | tail -n 1)
    echo "${runs:-?} ${took:-?} ${rate:-?} ${cov:-?} ${ft:-?}"
}

# What a failed run shows: the panic, the sanitizer report, how to replay.
report() {
    local log=$1
    {
        grep -E -A 4 "panicked at" "$log"
        grep -E -A 2 "ERROR: (AddressSanitizer|LeakSanitizer)" "$log"
        grep -E "ERROR: libFuzzer|disabled leak detection" "$log"
    } | head -n 30 || true
    grep -E "Test unit written to|^Output of|cargo fuzz (run|fmt|tmin)" "$log" | head -n 5 || true
}

# Runs target $1 for $secs seconds on corpus $2 (which receives new inputs)
# and the seeds; logs to $3. Fails on a crash, or if libFuzzer turned its
# leak checks off.
fuzz_target() {
    local t=$1 work=$2 log=$3
    mkdir -p "$work" "fuzz/corpus/$t"
    run_start=$(date +%s)
    # The first corpus directory receives new inputs; the seeds are read.
    cargo +nightly fuzz run "${flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" ${runs:+-runs="$runs"} "$max_len" "${libfuzzer[@]}" >"$log" 2>&1 || return 1
    ! grep -q "disabled leak detection" "$log"
}

# Bytes in the files under $1.
bytes() { find "$1" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }'; }

# Merges fuzz/corpus/$1 and the campaign corpus $2/$1 into a minimal set
# that replaces fuzz/corpus/$1: by features if that fits in
# $FUZZ_CORPUS_KIB KiB (default 256), else by edges only.
minimise() {
    local t=$1 dir=$2 merged="$2/$1.merged" before counters
    before="$(find "fuzz/corpus/$t" -type f | wc -l) files"
    for counters in 1 0; do
        rm -rf "$merged"
        mkdir -p "$merged"
        cargo +nightly fuzz run "${flags[@]}" "$t" "$merged" "fuzz/corpus/$t" "$dir/$t" -- \
            -merge=1 -use_counters=$counters "${libfuzzer[@]}" >"$dir/$t.merge.log" 2>&1 || return 1
        [ "$(bytes "$merged")" -le $((${FUZZ_CORPUS_KIB:-256} * 1024)) ] && break
    done
    find "fuzz/corpus/$t" -type f -delete
    cp "$merged"/* "fuzz/corpus/$t/"
    echo "fuzz: $t: corpus minimised ($([ $counters = 1 ] && echo "same features" || echo "same edges")):" \
        "$before -> $(find "fuzz/corpus/$t" -type f | wc -l) files, $(($(bytes "fuzz/corpus/$t") / 1024)) KiB;" \
        "review and commit fuzz/corpus/$t"
}

passed=0
failed=0
if $campaign; then
    dir=fuzz/target/campaign
    mkdir -p "$dir"
    for t in "${targets[@]}"; do
        log="$dir/$t.log"
        echo "fuzz: $t: campaign of ${secs} s from $(date +%T), log $log"
        if fuzz_target "$t" "$dir/$t" "$log"; then
            status=ok
        else
            status=FAILED
        fi
        read -r n took rate cov ft <<<"$(stats "$log")"
        line="$(date +%F) $t: $n executions in $took s ($rate/s), cov $cov ft $ft, $status"
        echo "fuzz: $line"
        echo "$line" >>"$dir/summary.txt"
        if [ "$status" = ok ]; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            report "$log"
        fi
        # Minimise the committed seeds and the campaign corpus into a
        # smallest set with the same features (edges and hit counts), or, if
        # that is over the budget, the same edges; it replaces the seeds.
        if ! minimise "$t" "$dir"; then
            failed=$((failed + 1))
            echo "fuzz: $t: FAILED to minimise the corpus; log: $dir/$t.merge.log"
            report "$dir/$t.merge.log"
        fi
    done
else
    logs=fuzz/target/fuzz-logs
    mkdir -p "$logs"
    for t in "${targets[@]}"; do
        work="fuzz/target/fuzz-corpus/$t"
        rm -rf "$work"
        log="$logs/$t.log"
        if fuzz_target "$t" "$work" "$log"; then
            passed=$((passed + 1))
            read -r n took rate cov ft <<<"$(stats "$log")"
            echo "fuzz: $t: $n executions in $took s ($rate/s, cov: $cov ft: $ft), no crash"
        else
            failed=$((failed + 1))
            read -r n _ _ _ _ <<<"$(stats "$log")"
            echo "fuzz: $t: FAILED after $n executions; log: $log"
            report "$log"
        fi
    done
fi

echo "fuzz: done in $(($(date +%s) - start)) s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
