#!/usr/bin/env bash
# ChatFallback's CPU engine against llama.cpp on the same files, threads and prompt: random-weight models with
# TinyLlama 1.1B's shapes (2048 dim, 22 layers, 32 heads, 4 KV heads, 5632 FFN, 32000 vocab) as Q8_0 and Q4_0.
# llama.cpp runs through node-llama-cpp's prebuilt CPU binaries (bench/llama-cpp, a benchmark-only dependency).
# Prints a markdown table: prefill and decode tokens/s, the decode ratio to llama.cpp, resident memory / file size.
# Usage: bench/chatfallback.sh   (env THREADS=2, PROMPT=32, TOKENS=65, ROUNDS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${THREADS:-2}" prompt="${PROMPT:-32}" tokens="${TOKENS:-65}" rounds="${ROUNDS:-2}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

dotnet build -c Release -nologo -v quiet bench/GoblinAspire.ChatBench >/dev/null
(cd bench/llama-cpp && npm install --no-audit --no-fund --omit=optional --loglevel=error >/dev/null)
chat() { dotnet bench/GoblinAspire.ChatBench/bin/Release/net10.0/GoblinAspire.ChatBench.dll "$@"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

echo "| model | engine | round | prefill tok/s | decode tok/s | decode vs llama.cpp | RSS MB | RSS / file |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for type in Q8_0 Q4_0; do
  model="$work/tinyllama-shape-$type.gguf"
  chat model "$type" "$model" >/dev/null
  size_mb=$(( $(stat -c %s "$model") / 1048576 ))
  for round in $(seq 1 "$rounds"); do
    base="$(cd bench/llama-cpp && node decode.mjs "$model" "$threads" "$prompt" "$tokens" 2>/dev/null | tail -1)"
    ours="$(chat decode "$model" "$threads" "$prompt" "$tokens")"
    for line in "$base" "$ours"; do
      engine="$(sed -n 's/.*engine=\([a-z.]*\).*/\1/p' <<<"$line")"
      ratio="$(echo "$(field decode_tps "$line") / $(field decode_tps "$base")" | bc -l)"
      printf "| %s (%s MiB) | %s | %s | %s | %s | %.2f | %s | %.2f |\n" "$type" "$size_mb" "$engine" "$round" "$(field prefill_tps "$line")" \
        "$(field decode_tps "$line")" "$ratio" "$(field rss_mb "$line")" "$(echo "$(field rss_mb "$line") / $size_mb" | bc -l)"
    done
  done
  rm -f "$model"
done
