#!/usr/bin/env bash
# TrainingWorker queue: submit-to-running latency (p50/p99) and dispatch throughput with no-op local jobs ("true"),
# two worker processes, a real PostgreSQL and registry. Every job still gets its MLflow run and checkpoint URLs, as in
# production. Baseline: starting the same no-op process the same way (setsid) with the same parallelism, no queue.
# Usage: bench/training.sh [jobs] [slots-per-worker]   (prints one line per round; ROUNDS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000}" slots="${2:-32}" rounds="${ROUNDS:-2}"

source bench/postgres.sh
for project in bench/GoblinAspire.Bench src/GoblinAspire.ModelRegistry src/GoblinAspire.TrainingWorker; do dotnet build -c Release -nologo -v quiet "$project" >/dev/null; done

work="$(mktemp -d)"
trap bench_cleanup EXIT

pg_port=18191 registry=18192 worker1=18193 worker2=18194
pg_start registrydb trainingdb
secret="$(head -c 32 /dev/urandom | base64)"
(
  export HTTP_PORTS=$registry Logging__LogLevel__Default=Warning ModelRegistry__ArtifactRoot="$work/artifacts" \
    ModelRegistry__Storage__SigningSecret="$secret" ConnectionStrings__registrydb="$(pg_connection registrydb)"
  exec dotnet src/GoblinAspire.ModelRegistry/bin/Release/net10.0/GoblinAspire.ModelRegistry.dll
) & pids+=($!)
for port in $worker1 $worker2; do
  (
    export HTTP_PORTS=$port Logging__LogLevel__Default=Warning ConnectionStrings__trainingdb="$(pg_connection trainingdb)" \
      services__modelregistry__http__0="http://127.0.0.1:$registry" TrainingWorker__RegistryUrl="http://127.0.0.1:$registry/" \
      TrainingWorker__QueueConcurrency__default="$slots" TrainingWorker__WorkDirectory="$work/jobs-$port"
    exec dotnet src/GoblinAspire.TrainingWorker/bin/Release/net10.0/GoblinAspire.TrainingWorker.dll
  ) & pids+=($!)
done
for port in $registry $worker1 $worker2; do
  for _ in $(seq 1 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.2; done
done

jobs() { dotnet bench/GoblinAspire.Bench/bin/Release/net10.0/GoblinAspire.Bench.dll jobs "http://127.0.0.1:$worker1,http://127.0.0.1:$worker2" "$(pg_connection trainingdb)" "$@"; }
jobs 100 "$((slots * 2))" >/dev/null   # warm-up: JIT, pools, the experiment and bucket
for round in $(seq 1 "$rounds"); do echo "round=$round $(jobs "$count" "$((slots * 2))")"; done
