#!/usr/bin/env bash
# Memory with mostly idle connections: 9,900 idle keep-alive connections
# (bin/idle-connections.py, one request each first) and 100 busy ones
# (wrk, 4 s of GET /bytes/128) on `arenapool serve --protocol http`:
#   bin/http-idle.sh MODE        # pool, vec or hyper
# Prints the server's VmRSS with only the idle connections, during the
# wrk run, its VmHWM, and wrk's requests/s and p99. Needs wrk, python3
# and an open-file limit above 10,000 (`ulimit -n`).
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p arenapool-cli
mkdir -p target/http-bench
mode=$1
port=$((7800 + RANDOM % 100))
bin=target/release/arenapool
$bin serve --protocol http --mode $mode --bind 127.0.0.1:$port --max-connections 20000 --duration 40 > target/http-bench/idle-serve-$mode.log 2>&1 &
pid=$!
sleep 1
python3 bin/idle-connections.py 127.0.0.1:$port 9900 25 > target/http-bench/idle-py-$mode.log 2>&1 &
py=$!
for i in $(seq 1 60); do grep -q "open and idle" target/http-bench/idle-py-$mode.log && break; sleep 0.5; done
idle_rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
wrk -t2 -c100 -d4s --latency http://127.0.0.1:$port/bytes/128 > target/http-bench/idle-wrk-$mode.log 2>&1 &
w=$!
sleep 2
mid=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
wait $w
hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
open=$(tail -1 target/http-bench/idle-serve-$mode.log)
rps=$(awk '/Requests\/sec/ {print $2}' target/http-bench/idle-wrk-$mode.log)
p99=$(awk '$1=="99%" {print $2}' target/http-bench/idle-wrk-$mode.log)
kill $py $pid 2>/dev/null; wait 2>/dev/null
echo "$mode: 9900 idle + 100 busy: idle_rss_kib=$idle_rss busy_rss_kib=$mid hwm_kib=$hwm rps=$rps p99=$p99 | $open"
