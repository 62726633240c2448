#!/usr/bin/env bash
# Time back to shared rate limits after a Redis outage. The gateway serves a key with an rpm limit while one client
# sends a request every 50 ms. Each round kills Redis (SIGKILL), leaves it away for OUTAGE seconds, starts it again on
# the same port, and measures from the moment Redis answers PING to the first request the gateway admitted through
# Redis again (the fallback counter in /metrics stops growing). Also counts 5xx answers over the whole run (expected 0).
# Usage: [ROUNDS=5] [OUTAGE=5] bench/redis-recovery.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${ROUNDS:-5}"
outage="${OUTAGE:-5}"
command -v redis-server >/dev/null || { echo "redis-server is required: sudo apt-get install -y redis-server" >&2; exit 1; }
source bench/postgres.sh

for project in bench/GoblinAspire.Bench src/GoblinAspire.Gateway; do dotnet build -c Release -nologo -v quiet "$project" >/dev/null; done
work="$(mktemp -d)"
trap 'kill "${redis_pid:-}" 2>/dev/null || true; bench_cleanup' EXIT

upstream=18091 gateway=18093 redis=18094 pg_port=18095
pg_start gatewaydb
dotnet bench/GoblinAspire.Bench/bin/Release/net10.0/GoblinAspire.Bench.dll upstream $upstream & pids+=($!)
start_redis() {
  redis-server --port $redis --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null &
  redis_pid=$!
}
start_redis
(
  export HTTP_PORTS=$gateway Logging__LogLevel__Default=Warning \
    ConnectionStrings__redis="127.0.0.1:$redis" \
    ConnectionStrings__gatewaydb="$(pg_connection gatewaydb)" \
    Gateway__Providers__0__Name=upstream Gateway__Providers__0__Kind=openai \
    Gateway__Providers__0__BaseUrl="http://127.0.0.1:$upstream" Gateway__Providers__0__HealthProbe=false \
    Gateway__Providers__0__Models__0__Name=bench Gateway__Access__AdminKey=bench-admin-key
  exec dotnet src/GoblinAspire.Gateway/bin/Release/net10.0/GoblinAspire.Gateway.dll
) & pids+=($!)

for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$gateway/health" && break; sleep 0.2; done
key="$(curl -fs -X POST -H 'Authorization: Bearer bench-admin-key' -H 'Content-Type: application/json' \
  -d '{"name":"recovery","rpm":100000000}' "http://127.0.0.1:$gateway/admin/keys" | sed -E 's/.*"key":"([^"]+)".*/\1/')"

chat() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"model":"bench","messages":[{"role":"user","content":"x"}]}' "http://127.0.0.1:$gateway/v1/chat/completions"; }
fallbacks() { curl -s "http://127.0.0.1:$gateway/metrics" | awk '/^rate_limit_fallbacks_total\{/ {s+=$NF} END {print s+0}'; }
now() { date +%s.%N; }

errors=0 requests=0
count() { local code; code="$(chat)"; requests=$((requests + 1)); [ "${code:0:1}" = 5 ] && errors=$((errors + 1)); return 0; }
for _ in $(seq 1 20); do count; done

results=()
for round in $(seq 1 "$rounds"); do
  kill -9 "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
  away="$(now)"
  while awk -v a="$away" -v n="$(now)" -v o="$outage" 'BEGIN {exit !(n - a < o)}'; do count; sleep 0.05; done
  start_redis
  until redis-cli -p $redis ping >/dev/null 2>&1; do sleep 0.01; done
  back="$(now)"
  before="$(fallbacks)"
  while true; do
    count
    after="$(fallbacks)"
    [ "$after" = "$before" ] && break
    before="$after"
    sleep 0.05
  done
  shared="$(now)"
  results+=("$(awk -v b="$back" -v s="$shared" 'BEGIN {printf "%.2f", s - b}')")
  echo "round $round: shared limits again $(printf '%s' "${results[-1]}") s after Redis answered PING" >&2
  for _ in $(seq 1 20); do count; sleep 0.05; done
done

sorted="$(printf '%s\n' "${results[@]}" | sort -n)"
echo "| rounds | outage | back to shared limits (s): min | median | max | requests | 5xx |"
echo "|---|---|---|---|---|---|---|"
echo "| $rounds | ${outage} s, SIGKILL | $(echo "$sorted" | head -1) | $(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') | $(echo "$sorted" | tail -1) | $requests | $errors |"
