#!/usr/bin/env bash
# Agent overhead over loopback with an external load generator (issue 2):
# the same Gin route bare, bare but logging its line with slog's own JSON
# handler ("barelog"), with the full agent, with the agent and a
# policy of every rule kind, and with the issue's hand-assembled reference
# stack (otelgin, a Prometheus histogram, a slog JSON access line, a per-IP
# rate limiter), alternated round by round so that the modes share the
# machine's state. Prints one row per run: requests/s, and the
# server's CPU per request (from /proc), which varies less than requests/s
# on a shared machine; then, per load, the median of each round's
# ratios to bare and the median CPU per request of each mode.
#
#   scripts/bench-agent.sh [rounds] [seconds] [load ...]
#
# A load is wrk's threads and connections, "t1c16" for -t1 -c16.
# Defaults: 4 rounds of 5 s at t1c16. Needs wrk.
#
# Spans and logs go to one OTLP sink process that reads and discards them
# (SINK=process, the default): like a control plane, but on this machine,
# so its work still competes for the same CPUs; it is not in the server's
# CPU column. SINK=inline runs the sink inside each measured server instead.
# SERVER_FLAGS adds flags to every measured server, e.g. "-work 50us" for a
# handler that computes 50 µs before answering.
set -euo pipefail
rounds=${1:-4}
secs=${2:-5}
shift $(($# < 2 ? $# : 2))
loads=("$@")
[ ${#loads[@]} -gt 0 ] || loads=(t1c16)
addr=127.0.0.1:9100
sink=${SINK:-process}
dir=$(mktemp -d)
bin=$dir/benchserver
sinkpid=
trap '[ -z "$sinkpid" ] || kill "$sinkpid" 2>/dev/null; rm -rf "$dir"' EXIT
go build -o "$bin" ./examples/benchserver
command -v wrk >/dev/null || { echo "bench-agent: wrk is not installed" >&2; exit 1; }

sinkflags=()
case $sink in
process)
  "$bin" -mode sink -addr 127.0.0.1:9101 &
  sinkpid=$!
  sinkflags=(-sink http://127.0.0.1:9101)
  for _ in $(seq 50); do
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:9101/v1/traces" 2>/dev/null && break
    sleep 0.1
  done
  ;;
inline) ;;
*) echo "bench-agent: SINK=$sink is neither process nor inline" >&2; exit 2 ;;
esac

cpu_of() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $rounds rounds of ${secs}s, sink $sink, server flags '${SERVER_FLAGS:-}'"
printf '%-7s %-5s %-9s %12s %14s\n' load round mode 'req/s' 'µs CPU/req'
for load in "${loads[@]}"; do
  [[ $load =~ ^t([0-9]+)c([0-9]+)$ ]] || { echo "bench-agent: load $load is not like t1c16" >&2; exit 2; }
  threads=${BASH_REMATCH[1]}
  conns=${BASH_REMATCH[2]}
  for round in $(seq 1 "$rounds"); do
    for mode in bare barelog agent policy reference; do
      # shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
      "$bin" -mode "$mode" -addr "$addr" "${sinkflags[@]}" ${SERVER_FLAGS:-} &
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
      awk -v l="$load" -v r="$round" -v m="$mode" -v rps="$rps" -v c="$((c1 - c0))" -v n="$reqs" -v hz="$hz" \
        'BEGIN{printf "%-7s %-5s %-9s %12.0f %14.1f\n", l, r, m, rps, (c/hz*1e6)/n}' | tee -a "$dir/rows"
    done
  done
done

echo
echo "# medians over rounds: each round's requests/s ratio to bare (and the agent's to barelog), and the µs of server CPU per request"
printf '%-7s %11s %14s %12s %15s %9s %10s %11s %14s\n' load agent/bare agent/barelog policy/bare reference/bare 'CPU bare' 'CPU agent' 'CPU policy' 'CPU reference'
awk '
  { rps[$1, $2, $3] = $4; cpu[$1, $2, $3] = $5; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } ; if ($2 > rounds[$1]) rounds[$1] = $2 }
  function median(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return k % 2 ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
  }
  END {
    for (i = 1; i <= n; i++) {
      l = order[i]; k = rounds[l]
      for (r = 1; r <= k; r++) {
        ag[r] = rps[l, r, "agent"] / rps[l, r, "bare"]; po[r] = rps[l, r, "policy"] / rps[l, r, "bare"]
        al[r] = rps[l, r, "agent"] / rps[l, r, "barelog"]
        re[r] = rps[l, r, "reference"] / rps[l, r, "bare"]
        cb[r] = cpu[l, r, "bare"]; ca[r] = cpu[l, r, "agent"]; cp[r] = cpu[l, r, "policy"]; cr[r] = cpu[l, r, "reference"]
      }
      printf "%-7s %11.2f %14.2f %12.2f %15.2f %9.1f %10.1f %11.1f %14.1f\n", l, median(ag, k), median(al, k), median(po, k), median(re, k),
        median(cb, k), median(ca, k), median(cp, k), median(cr, k)
    }
  }' "$dir/rows"
