#!/usr/bin/env bash
# Back-to-back 1 GiB plain uploads into one registry store (as an ingest-heavy registry sees them), with the wall time
# and the registry's own CPU (utime + stime) of each. Usage: [ROUNDS=3] [REGISTRY_EXTRA_ENV="ModelRegistry__Storage__DirectWrites=true"] bench/uploads.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/postgres.sh
source bench/registry-process.sh
dotnet build -c Release -nologo -v quiet src/GoblinAspire.ModelRegistry >/dev/null
work="$(mktemp -d "${WORK_DIR:-/tmp}/goblin-uploads-XXXXXX")"
trap bench_cleanup EXIT
pg_port=18193 registry=18194
pg_start registrydb
registry_start
curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"name":"plain"}' "$base/storage/v1/b?project=bench"
head -c 1073741824 /dev/urandom >"$work/source.bin"
upload() { curl -sS --fail-with-body -o /dev/null -X POST -T "$work/source.bin" "$base/upload/storage/v1/b/plain/o?uploadType=media&name=big$1.bin"; }
cpu() { sed 's/.*) //' "/proc/${pids[0]}/stat" | awk '{ print ($12 + $13) * 10 }'; }
upload 0 # warm-up
echo "| upload | wall s | registry CPU ms |"
echo "| --- | --- | --- |"
for i in $(seq 1 "${ROUNDS:-3}"); do
  c0=$(cpu); s=$(date +%s.%N); upload "$i"; e=$(date +%s.%N); c1=$(cpu)
  printf "| %d | %.2f | %d |\n" "$i" "$(echo "$e - $s" | bc -l)" "$((c1 - c0))"
done
