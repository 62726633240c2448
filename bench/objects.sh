#!/usr/bin/env bash
# Object store streaming: a SIZE_MB object (default 1024) uploaded and downloaded through the registry's GCS API,
# plain and AES-256-GCM encrypted, side by side with the baseline of plain file copies on the same disk (cp + fsync
# for the upload side, cp for the download side, both reading from the disk rather than the page cache). Prints a markdown table with throughput, the ratio to the
# baseline, and the registry's peak resident memory (VmHWM) after each pass.
# Usage: bench/objects.sh   (env: SIZE_MB, WORK_DIR = a folder on the disk to measure; default a temp folder;
#   REGISTRY_EXTRA_ENV, e.g. "ModelRegistry__Storage__DirectWrites=false" to stage uploads through the page cache)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb="${SIZE_MB:-1024}"

source bench/postgres.sh
source bench/registry-process.sh
dotnet build -c Release -nologo -v quiet src/GoblinAspire.ModelRegistry >/dev/null

work="$(mktemp -d "${WORK_DIR:-/tmp}/goblin-objects-XXXXXX")"
trap bench_cleanup EXIT

pg_port=18093 registry=18094
pg_start registrydb
key="$(head -c 32 /dev/urandom | base64)"
registry_start ModelRegistry__Storage__EncryptionKeys__bench="$key" ModelRegistry__Storage__ActiveEncryptionKey=bench
curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/json' -d '{"name":"plain"}' "$base/storage/v1/b?project=bench"
curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' \
  -o /dev/null -d '{"name":"encrypted","encryption":{"defaultKmsKeyName":"bench"}}' "$base/storage/v1/b?project=bench"

head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/source.bin"
seconds() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); echo "$end - $start" | bc -l; }
rss_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$(pgrep -f GoblinAspire.ModelRegistry.dll | head -1)/status"; }
copy_sync() { cp "$work/source.bin" "$work/copy.bin" && sync "$work/copy.bin"; }
copy_back() { cp "$work/copy.bin" "$work/back.bin"; }
# Downloads and their baseline read from the disk: uploads are written with O_DIRECT and leave nothing cached,
# so the copy they are compared with must not read a cached file either (GNU dd drops a whole file's pages).
evict() { find "$@" -type f -exec dd if={} iflag=nocache count=0 status=none \; ; }
upload() { curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/octet-stream' -T "$work/source.bin" "$base/upload/storage/v1/b/$1/o?uploadType=media&name=big.bin"; }
download() { curl -sS --fail-with-body -o "$work/down.bin" "$base/storage/v1/b/$1/o/big.bin?alt=media"; }

# Warm-up: JIT and page cache for the source file.
head -c 10485760 "$work/source.bin" | curl -sS --fail-with-body -o /dev/null -X POST -T - "$base/upload/storage/v1/b/plain/o?uploadType=media&name=warm.bin"
cat "$work/source.bin" >/dev/null

echo "| pass | seconds | MB/s | ratio to baseline | registry peak RSS MB |"
echo "| --- | --- | --- | --- | --- |"
row() { printf "| %s | %.2f | %.0f | %s | %s |\n" "$1" "$2" "$(echo "$size_mb / $2" | bc -l)" "$3" "$4"; }
for round in 1 2; do
  up_base=$(seconds copy_sync); rm -f "$work/copy.bin"
  row "baseline: cp + fsync (round $round)" "$up_base" "1.00" "-"
  for bucket in plain encrypted; do
    t=$(seconds upload $bucket)
    row "upload, $bucket (round $round)" "$t" "$(printf %.2f "$(echo "$up_base / $t" | bc -l)")" "$(rss_mb)"
  done
  copy_sync
  evict "$work/copy.bin"
  down_base=$(seconds copy_back); rm -f "$work/back.bin"
  row "baseline: cp (round $round)" "$down_base" "1.00" "-"
  for bucket in plain encrypted; do
    evict "$work/store"
    t=$(seconds download $bucket)
    cmp -s "$work/source.bin" "$work/down.bin" || { echo "download of $bucket differs from the source" >&2; exit 1; }
    rm -f "$work/down.bin"
    row "download, $bucket (round $round)" "$t" "$(printf %.2f "$(echo "$down_base / $t" | bc -l)")" "$(rss_mb)"
  done
  rm -f "$work/copy.bin"
done
