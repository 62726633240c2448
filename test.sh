#!/usr/bin/env bash
# The one test command: installs what the tests need where it is missing (idempotent), then builds the whole solution
# with warnings as errors, the AppHost included, and runs every test project. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")"

configuration="${CONFIGURATION:-Release}"
log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Debian packages the tests run for real: Redis and PostgreSQL (the AppHost runs them as processes when no container
# runtime answers), setsid and setpriv (util-linux), promtool (alert rules), Node.js (Google's official GCS client, the
# Kubernetes schema check), kubectl (kustomize) and Chromium (the dashboard test).
packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  packages+=(postgresql)
fi
{ command -v setsid && command -v setpriv; } >/dev/null 2>&1 || packages+=(util-linux)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
[ -x /usr/bin/chromium ] || packages+=(chromium)
# kubectl kustomize builds the AppHost's Kubernetes overlay; Debian's kubectl (1.20) where none is installed.
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)
if [ "${#packages[@]}" -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "Installing ${packages[*]} with apt-get."
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$log_dir/apt.log" 2>&1; }; then
    cat "$log_dir/apt.log"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "The .NET 10 SDK is required (dotnet on PATH)." >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# Node packages the tests run, each pinned by its package-lock.json: Google's official Cloud Storage client (a registry
# test drives it) and kubernetes-models (the Kubernetes output's schema check).
for folder in tests/gcs-client tests/kubernetes-schema; do
  if ! (cd "$folder" && npm ci --no-audit --no-fund --loglevel=error >"$log_dir/npm.log" 2>&1); then
    cat "$log_dir/npm.log"
    echo "0 passed, 1 failed"
    exit 1
  fi
done

# llama.cpp (node-llama-cpp's prebuilt CPU binaries), the reference of the ChatFallback parity tests; pinned by its lock.
# npm install, not npm ci: the lock npm writes on Linux omits other platforms' optional packages, which npm ci refuses;
# install leaves the lock as it is.
if ! (cd tests/llama-cpp-parity && npm install --no-audit --no-fund --omit=optional --loglevel=error >"$log_dir/npm-llama.log" 2>&1); then
  cat "$log_dir/npm-llama.log"
  echo "0 passed, 1 failed"
  exit 1
fi

if ! dotnet build GoblinAspire.sln -c "$configuration" -warnaserror -nologo -v quiet; then
  echo "0 passed, 1 failed"
  exit 1
fi

dotnet test GoblinAspire.sln -c "$configuration" --no-build --nologo 2>&1 | tee "$log_dir/test.log"
test_status=${PIPESTATUS[0]}

summaries="$(grep -E '^(Passed|Failed)!' "$log_dir/test.log" || true)"
sum() { printf '%s\n' "$summaries" | sed -nE "s/.*$1:[[:space:]]+([0-9]+).*/\\1/p" | awk '{s+=$1} END {print s+0}'; }
passed=$(sum Passed)
failed=$(sum Failed)
skipped=$(sum Skipped)
assemblies=$(printf '%s\n' "$summaries" | grep -c . || true)

if [ "$test_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # A test host that crashed reports no summary line: count it as a failure rather than pass quietly.
  failed=1
fi

line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "Test assemblies reporting: $assemblies"
echo "$line"
[ "$failed" -eq 0 ] && [ "$test_status" -eq 0 ]
