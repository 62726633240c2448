#!/usr/bin/env bash
# Gateway overhead benchmark: the same fast upstream measured directly, through a bare YARP proxy, and through the
# gateway, side by side in one run, non-streaming and streaming, with wrk. Prints a markdown table for
# docs/benchmarks.md. Usage: [MODES="false true"] [CONNECTION_COUNTS="50 1"] [TARGETS="direct yarp gateway gateway+key"] \
#   bench/gateway.sh [duration-seconds] [connections]; TARGETS may add gateway+key-no-limits (a key without limits).
# GATEWAY_EXTRA_ENV and UPSTREAM_EXTRA_ENV ("NAME=value ...") add environment to the gateway or the stand-in upstream.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-15}"
connections="${2:-50}"
command -v wrk >/dev/null || { echo "wrk is required: sudo apt-get install -y wrk" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is required: sudo apt-get install -y redis-server" >&2; exit 1; }
source bench/postgres.sh

for project in bench/GoblinAspire.Bench src/GoblinAspire.Gateway; do dotnet build -c Release -nologo -v quiet "$project" >/dev/null; done
work="$(mktemp -d)"
trap bench_cleanup EXIT

upstream=18081 yarp=18082 gateway=18083 redis=18084 pg_port=18085
pg_start gatewaydb
dotnet bench/GoblinAspire.Bench/bin/Release/net10.0/GoblinAspire.Bench.dll upstream $upstream & pids+=($!)
dotnet bench/GoblinAspire.Bench/bin/Release/net10.0/GoblinAspire.Bench.dll yarp $yarp "http://127.0.0.1:$upstream" & pids+=($!)
redis-server --port $redis --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning >/dev/null & pids+=($!)
(
  export HTTP_PORTS=$gateway Logging__LogLevel__Default=Warning \
    ConnectionStrings__redis="127.0.0.1:$redis" \
    ConnectionStrings__gatewaydb="$(pg_connection gatewaydb)" \
    Gateway__Providers__0__Name=upstream Gateway__Providers__0__Kind=openai \
    Gateway__Providers__0__BaseUrl="http://127.0.0.1:$upstream" Gateway__Providers__0__HealthProbe=false \
    Gateway__Providers__0__Models__0__Name=bench Gateway__Access__AdminKey=bench-admin-key \
    Gateway__Access__RequireKeys=false
  [ -n "${GATEWAY_EXTRA_ENV:-}" ] && export ${GATEWAY_EXTRA_ENV}
  exec dotnet src/GoblinAspire.Gateway/bin/Release/net10.0/GoblinAspire.Gateway.dll
) & pids+=($!)

for port in $upstream $yarp $gateway; do
  for _ in $(seq 1 100); do curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"model":"bench","messages":[{"role":"user","content":"x"}]}' "http://127.0.0.1:$port/v1/chat/completions" && break; sleep 0.2; done
done

# A virtual key with limits too high to refuse anything: every request pays for the key check and the Redis admission.
key="$(curl -fs -X POST -H 'Authorization: Bearer bench-admin-key' -H 'Content-Type: application/json' \
  -d '{"name":"bench","rpm":1000000000,"tpm":1000000000,"max_parallel":100000}' "http://127.0.0.1:$gateway/admin/keys" | sed -E 's/.*"key":"([^"]+)".*/\1/')"

# A key with no limits at all: the key check and accounting without the Redis admission, to split the two costs.
plain_key="$(curl -fs -X POST -H 'Authorization: Bearer bench-admin-key' -H 'Content-Type: application/json' \
  -d '{"name":"bench-no-limits"}' "http://127.0.0.1:$gateway/admin/keys" | sed -E 's/.*"key":"([^"]+)".*/\1/')"

for stream in false true; do
  for auth in none key plainkey; do
    cat >"$work/post-$stream-$auth.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
$([ $auth = key ] && echo "wrk.headers[\"Authorization\"] = \"Bearer $key\"")
$([ $auth = plainkey ] && echo "wrk.headers[\"Authorization\"] = \"Bearer $plain_key\"")
wrk.body = '{"model":"bench","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write one sentence about foxes."}],"max_tokens":64,"temperature":0.7,"stream":$stream}'
LUA
  done
done

run() { # port stream connections seconds [auth]
  local threads=2; [ "$3" -lt 2 ] && threads=1
  wrk -t$threads -c"$3" -d"$4"s --latency -s "$work/post-$2-${5:-none}.lua" "http://127.0.0.1:$1/v1/chat/completions" 2>&1
}
ms() { # wrk latency value (us, ms or s) → milliseconds
  awk -v v="$1" 'BEGIN { n=v; sub(/[a-z]+$/, "", n); if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}

# Steady state first: the gateway's tiered JIT (with dynamic PGO) keeps recompiling hot paths for about a minute
# after start, on the same two cores. Each proxy is driven in both modes before anything is measured.
for stream in ${MODES:-false true}; do
  for target in yarp gateway gateway+key; do
    port=$yarp auth=none
    [ $target = gateway ] && port=$gateway
    [ $target = gateway+key ] && port=$gateway && auth=key
    run $port $stream 8 "${WARMUP:-10}" $auth >/dev/null
  done
done

# p50 and p99 of the Redis admission round trip as the gateway itself timed it (rate_limit_admission_seconds),
# interpolated within the histogram's buckets, from two scrapes around one measurement.
admission_quantiles() { # before-scrape after-scrape
  awk '/^rate_limit_admission_seconds_bucket/ { match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5); c[le] += (FILENAME == ARGV[1] ? -$NF : $NF); if (!(le in seen)) { seen[le] = 1; order[n++] = le } }
    END {
      total = c["+Inf"]; if (total <= 0) { print "- | -"; exit }
      split("0.5 0.99", qs, " ")
      for (i = 1; i <= 2; i++) {
        want = qs[i] * total; prev = 0; prevc = 0; out = "-"
        for (j = 0; j < n; j++) { le = order[j]; if (le == "+Inf") break
          if (c[le] >= want) { out = sprintf("%.0f", 1e6 * (prev + (le - prev) * (want - prevc) / (c[le] - prevc > 0 ? c[le] - prevc : 1))); break }
          prev = le; prevc = c[le] }
        r = r (i > 1 ? " | " : "") out
      }
      print r
    }' "$1" "$2"
}

echo "| mode | connections | target | requests/s | p50 ms | p99 ms |"
echo "| --- | --- | --- | --- | --- | --- |"
declare -A rps p50 p99 admission
for stream in ${MODES:-false true}; do
  for c in ${CONNECTION_COUNTS:-$connections 1}; do
    for target in ${TARGETS:-direct yarp gateway gateway+key}; do
      port=$upstream; auth=none
      [ $target = yarp ] && port=$yarp
      [ $target = gateway ] && port=$gateway
      [ $target = gateway+key ] && port=$gateway && auth=key
      [ $target = gateway+key-no-limits ] && port=$gateway && auth=plainkey
      run $port $stream "$c" 3 $auth >/dev/null
      [ $target = gateway+key ] && curl -fs "http://127.0.0.1:$gateway/metrics" >"$work/metrics-before"
      out="$(run $port $stream "$c" "$duration" $auth)"
      [ $target = gateway+key ] && curl -fs "http://127.0.0.1:$gateway/metrics" >"$work/metrics-after" \
        && admission["$stream-$c"]="$(admission_quantiles "$work/metrics-before" "$work/metrics-after")"
      key="$stream-$c-$target"
      rps[$key]=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      p50[$key]=$(ms "$(echo "$out" | awk '$1=="50%" {print $2}')")
      p99[$key]=$(ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
      mode=$([ $stream = true ] && echo streaming || echo non-streaming)
      echo "| $mode | $c | $target | ${rps[$key]} | ${p50[$key]} | ${p99[$key]} |"
    done
  done
done

echo
echo "| mode | connections | gateway added p50 ms (vs direct) | gateway added p99 ms (vs direct) | gateway throughput / YARP | with key and limits: added p50 ms | added p99 ms | throughput / YARP | admission round trip p50 µs | p99 µs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for stream in ${MODES:-false true}; do
  for c in ${CONNECTION_COUNTS:-$connections 1}; do
    mode=$([ $stream = true ] && echo streaming || echo non-streaming)
    awk -v m="$mode" -v c="$c" -v gp50="${p50[$stream-$c-gateway]:-}" -v dp50="${p50[$stream-$c-direct]:-}" -v gp99="${p99[$stream-$c-gateway]:-}" -v dp99="${p99[$stream-$c-direct]:-}" -v g="${rps[$stream-$c-gateway]:-}" -v y="${rps[$stream-$c-yarp]:-}" \
      -v kp50="${p50[$stream-$c-gateway+key]:-}" -v kp99="${p99[$stream-$c-gateway+key]:-}" -v k="${rps[$stream-$c-gateway+key]:-}" -v adm="${admission[$stream-$c]:-- | -}" \
      'function d(a, b) { return (a == "" || b == "") ? "-" : sprintf("%.3f", a - b) } function r(a, b) { return (a == "" || b == "") ? "-" : sprintf("%.2f", a / b) }
       BEGIN { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m, c, d(gp50, dp50), d(gp99, dp99), r(g, y), d(kp50, dp50), d(kp99, dp99), r(k, y), adm }'
  done
done
