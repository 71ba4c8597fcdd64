#!/usr/bin/env bash
# Agent overhead over loopback with an external load generator (issue 2):
# the same Gin route bare, with the full agent, and with the agent and a
# policy of every rule kind, alternated round by round so that the modes
# share the machine's state. Prints one row per run: requests/s, and the
# server's CPU seconds per 1,000 requests (from /proc), which varies less
# than requests/s on a shared machine.
#
#   scripts/bench-agent.sh [rounds] [seconds] [wrk threads] [connections]
#
# Needs wrk. Defaults: 4 rounds of 5 s, wrk -t1 -c16.
set -euo pipefail
rounds=${1:-4}
secs=${2:-5}
threads=${3:-1}
conns=${4:-16}
addr=127.0.0.1:9100
bin=$(mktemp -d)/benchserver
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./examples/benchserver
command -v wrk >/dev/null || { echo "bench-agent: wrk is not installed" >&2; exit 1; }

cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), wrk -t$threads -c$conns -d${secs}s"
printf '%-5s %-7s %12s %14s\n' round mode 'req/s' 'cpu-ms/1k req'
for round in $(seq 1 "$rounds"); do
  for mode in bare agent policy; do
    "$bin" -mode "$mode" -addr "$addr" &
    pid=$!
    for _ in $(seq 50); do
      curl -fsS -o /dev/null "http://$addr/users/42" 2>/dev/null && break
      sleep 0.1
    done
    c0=$(cpu_of "$pid")
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" "http://$addr/users/42")
    c1=$(cpu_of "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    reqs=$(awk '/requests in/{print $1}' <<<"$out")
    awk -v r="$round" -v m="$mode" -v rps="$rps" -v c="$((c1 - c0))" -v n="$reqs" -v hz="$hz" \
      'BEGIN{printf "%-5s %-7s %12.0f %14.1f\n", r, m, rps, (c/hz*1000)/(n/1000)}'
  done
done
