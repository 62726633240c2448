#!/usr/bin/env bash
# The one test command: builds and tests the whole solution with warnings as errors.
# Where the Aspire packages do not restore (a partial NuGet mirror), it builds and tests everything except the
# AppHost projects and says so in one line; where no container runtime answers, it runs the AppHost tests that
# need none. Ends with "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")"

configuration="${CONFIGURATION:-Release}"
target=GoblinAspire.sln
filter=()
log_dir="$(mktemp -d)"
trap 'rm -rf "$log_dir"' EXIT

if ! dotnet restore src/GoblinAspire.AppHost/GoblinAspire.AppHost.csproj >"$log_dir/apphost-restore.log" 2>&1; then
  if grep -q "Aspire" "$log_dir/apphost-restore.log"; then
    # A solution filter of every project in the solution but the AppHost ones, made from the .sln itself.
    target=GoblinAspire.NoAspire.slnf
    projects=$(grep -oE '"[^"]+\.csproj"' GoblinAspire.sln | grep -v 'AppHost' | sed 's/\\/\\\\/g' | paste -sd, -)
    printf '{"solution":{"path":"GoblinAspire.sln","projects":[%s]}}\n' "$projects" >"$target"
    echo "Skipped GoblinAspire.AppHost and GoblinAspire.AppHost.Tests: the Aspire 13 packages (Aspire.AppHost.Sdk, Aspire.Hosting.*) do not restore from the configured NuGet feeds."
  else
    cat "$log_dir/apphost-restore.log"
    echo "AppHost restore failed for a reason other than missing Aspire packages." >&2
    exit 1
  fi
elif ! docker info >/dev/null 2>&1; then
  filter=(--filter "Category!=RequiresContainerRuntime")
  echo "Skipped the AppHost tests that start containers: no container runtime answers 'docker info'."
fi

# Google's official GCS client for Node.js, which a registry test drives; pinned by its package-lock.json.
if ! (cd tests/gcs-client && npm ci --no-audit --no-fund --loglevel=error >"$log_dir/npm.log" 2>&1); then
  cat "$log_dir/npm.log"
  echo "0 passed, 1 failed"
  exit 1
fi

if ! dotnet build "$target" -c "$configuration" -warnaserror -nologo -v quiet; then
  echo "0 passed, 1 failed"
  exit 1
fi

dotnet test "$target" -c "$configuration" --no-build --nologo "${filter[@]}" 2>&1 | tee "$log_dir/test.log"
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
