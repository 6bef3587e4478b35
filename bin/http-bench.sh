#!/usr/bin/env bash
# One measured run of the HTTP server against wrk:
#   bin/http-bench.sh MODE CONNECTIONS PATH [SECONDS]
#   bin/http-bench.sh pool 1000 /bytes/128 4
# Starts `arenapool serve --protocol http --mode MODE` (release build),
# runs `wrk --latency` with CONNECTIONS keep-alive connections for SECONDS,
# and prints one line: requests/s, latency p50 and p99 (wrk's), the
# server's resident memory halfway through and its peak (VmRSS, VmHWM),
# its heap allocations per request after warm-up, and wrk's errors.
# Needs wrk (Debian: apt-get install wrk) and, for many connections, an
# open-file limit above CONNECTIONS (`ulimit -n`).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1 c=$2 path=$3 secs=${4:-4}
cargo build --release -q -p arenapool-cli
bin=target/release/arenapool
out=target/http-bench
mkdir -p "$out"
port=$((7200 + RANDOM % 500))
$bin serve --protocol http --mode "$mode" --bind "127.0.0.1:$port" \
    --max-connections 20000 --duration $((secs + 3)) >"$out/serve-$mode-$c.log" 2>&1 &
pid=$!
sleep 1
threads=2
[ "$c" -lt 2 ] && threads=1
wrk -t$threads -c"$c" -d"${secs}s" --latency "http://127.0.0.1:$port$path" >"$out/wrk-$mode-$c.log" 2>&1 &
wpid=$!
sleep $((secs / 2 + 1))
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
wait $wpid
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk-$mode-$c.log")
p50=$(awk '$1=="50%" {print $2}' "$out/wrk-$mode-$c.log")
p99=$(awk '$1=="99%" {print $2}' "$out/wrk-$mode-$c.log")
err=$(grep -E "Socket errors|Non-2xx" "$out/wrk-$mode-$c.log" | tr '\n' ' ' || true)
wait $pid
allocs=$(grep -o "[0-9.]* heap allocations per request" "$out/serve-$mode-$c.log" || true)
echo "$mode c=$c $path rps=$rps p50=$p50 p99=$p99 rss_mid_kib=$rss hwm_kib=$hwm ${allocs:-} ${err:-no errors}"
