#!/usr/bin/env bash
# ChatFallback's CPU engine against llama.cpp on the same files, threads and prompt, in the same session: random-weight
# models with TinyLlama 1.1B's shapes (2048 dim, 22 layers, 32 heads, 4 KV heads, 5632 FFN, 32000 vocab) and Qwen2.5
# 0.5B's (896 dim, 24 layers, 14 heads, 2 KV heads, 4864 FFN, 151,936 vocab, tied embeddings).
# llama.cpp runs through node-llama-cpp's prebuilt CPU binaries (bench/llama-cpp, a benchmark-only dependency).
# Each round runs llama.cpp then this engine on one file; ratios are this engine over llama.cpp in the same round.
# Load is reading the file and, for this engine, the warm-up the service also runs at load (kernels compiled before
# the first prompt); prefill and TTFT start after it, for both engines.
# Prints a markdown table per round and a summary line per file (min–max over the rounds).
# Usage: bench/chatfallback.sh   (env THREADS=2, PROMPT=512, TOKENS=33, ROUNDS=4,
#        MODELS="tinyllama:Q8_0 tinyllama:Q4_0 tinyllama:Q4_K tinyllama:F16 qwen2.5-0.5b:Q8_0 qwen2.5-0.5b:BF16")
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${THREADS:-2}" prompt="${PROMPT:-512}" tokens="${TOKENS:-33}" rounds="${ROUNDS:-4}"
models="${MODELS:-tinyllama:Q8_0 tinyllama:Q4_0 tinyllama:Q4_K tinyllama:F16 qwen2.5-0.5b:Q8_0 qwen2.5-0.5b:BF16}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

dotnet build -c Release -nologo -v quiet bench/GoblinAspire.ChatBench >/dev/null
(cd bench/llama-cpp && npm install --no-audit --no-fund --omit=optional --loglevel=error >/dev/null)
chat() { dotnet bench/GoblinAspire.ChatBench/bin/Release/net10.0/GoblinAspire.ChatBench.dll "$@"; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { echo "$1 / $2" | bc -l; }

echo "| model | round | engine | load s | prefill tok/s | TTFT s ($prompt tokens) | decode tok/s | prefill ×llama.cpp | decode ×llama.cpp | RSS MB | RSS / file |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
summary=""
for item in $models; do
  shape="${item%%:*}" type="${item##*:}"
  model="$work/$shape-$type.gguf"
  chat model "$shape" "$type" "$model" >/dev/null
  size_mb=$(( $(stat -c %s "$model") / 1048576 ))
  prefill_ratios=() decode_ratios=() rss_ratios=()
  for round in $(seq 1 "$rounds"); do
    base="$(cd bench/llama-cpp && node decode.mjs "$model" "$threads" "$prompt" "$tokens" 2>/dev/null | tail -1)"
    ours="$(chat decode "$model" "$threads" "$prompt" "$tokens")"
    for line in "$base" "$ours"; do
      engine="$(sed -n 's/.*engine=\([a-z.]*\).*/\1/p' <<<"$line")"
      p_ratio="$(ratio "$(field prefill_tps "$line")" "$(field prefill_tps "$base")")"
      d_ratio="$(ratio "$(field decode_tps "$line")" "$(field decode_tps "$base")")"
      printf "| %s %s (%s MiB) | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %s | %.2f |\n" "$shape" "$type" "$size_mb" "$round" "$engine" \
        "$(field load_s "$line")" "$(field prefill_tps "$line")" "$(field ttft_s "$line")" "$(field decode_tps "$line")" "$p_ratio" "$d_ratio" \
        "$(field rss_mb "$line")" "$(ratio "$(field rss_mb "$line")" "$size_mb")"
    done
    prefill_ratios+=("$(ratio "$(field prefill_tps "$ours")" "$(field prefill_tps "$base")")")
    decode_ratios+=("$(ratio "$(field decode_tps "$ours")" "$(field decode_tps "$base")")")
    rss_ratios+=("$(ratio "$(field rss_mb "$ours")" "$size_mb")")
  done
  span() { printf '%s\n' "$@" | sort -g | sed -n '1p;$p' | xargs printf '%.2f–%.2f'; }
  summary+="- $shape $type: prefill $(span "${prefill_ratios[@]}")× llama.cpp, decode $(span "${decode_ratios[@]}")×, RSS $(span "${rss_ratios[@]}")× the file ($rounds rounds)"$'\n'
  rm -f "$model"
done
echo
printf '%s' "$summary"
