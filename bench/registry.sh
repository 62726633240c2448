#!/usr/bin/env bash
# Model registry latency at a fixed request rate: create-version and get-latest-versions at 200 requests/s, with the
# same server's /alive at the same rate as the baseline, against a real PostgreSQL. Prints a markdown table.
# Usage: bench/registry.sh [rate] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-200}"
seconds="${2:-20}"

source bench/postgres.sh
source bench/registry-process.sh
for project in bench/GoblinAspire.Bench src/GoblinAspire.ModelRegistry; do dotnet build -c Release -nologo -v quiet "$project" >/dev/null; done

work="$(mktemp -d)"
trap bench_cleanup EXIT

pg_port=18091 registry=18092
pg_start registrydb

registry_start
curl -fs -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"name":"bench"}' "$base/api/2.0/mlflow/registered-models/create"

load() { dotnet bench/GoblinAspire.Bench/bin/Release/net10.0/GoblinAspire.Bench.dll load "$@"; }
# Warm-up: JIT, connection pools, a few versions.
load "$base/alive" 100 3 GET >/dev/null
load "$base/api/2.0/mlflow/model-versions/create" "$rate" 5 POST '{"name":"bench","source":"mlflow-artifacts:/bench/warm-{n}"}' >/dev/null || true
load "$base/api/2.0/mlflow/registered-models/get-latest-versions" "$rate" 3 POST '{"name":"bench","stages":["None"]}' >/dev/null || true

echo "| operation | target rate | achieved rate | p50 ms | p99 ms | max ms | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row() {
  local name="$1"; shift
  local out; out="$(load "$@" || true)"
  awk -v n="$name" -v r="$rate" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } } END { printf "| %s | %s | %s | %s | %s | %s | %s |\n", n, r, v["rate"], v["p50_ms"], v["p99_ms"], v["max_ms"], v["errors"] }' <<<"$out"
}
[ -n "${SKIP_BASELINE:-}" ] || row "GET /alive (baseline)" "$base/alive" "$rate" "$seconds" GET
row "model-versions/create" "$base/api/2.0/mlflow/model-versions/create" "$rate" "$seconds" POST '{"name":"bench","source":"mlflow-artifacts:/bench/{n}","run_id":"r{n}"}'
row "registered-models/get-latest-versions" "$base/api/2.0/mlflow/registered-models/get-latest-versions" "$rate" "$seconds" POST '{"name":"bench","stages":["None"]}'
echo
echo "versions in the model at the end: $(PGPASSWORD=bench psql -h 127.0.0.1 -p $pg_port -U postgres -d registrydb -tAc 'SELECT count(*) FROM model_versions')"
