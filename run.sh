#!/usr/bin/env bash
# Runs the whole platform from the AppHost, with the Aspire dashboard. Where no container runtime answers and the
# machine lacks Redis or PostgreSQL, installs them first (Debian/Ubuntu, apt-get); the AppHost then runs them as local
# processes. Arguments go to the AppHost, e.g. `./run.sh --Parameters:chat-model-path=/models/qwen.gguf`.
set -euo pipefail
cd "$(dirname "$0")"

# The AppHost's own rule: the runtime ASPIRE_CONTAINER_RUNTIME names (docker by default) answers `info`.
runtime="${ASPIRE_CONTAINER_RUNTIME:-docker}"
if ! "$runtime" info >/dev/null 2>&1; then
  packages=()
  command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
  if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    packages+=(postgresql)
  fi
  if [ "${#packages[@]}" -gt 0 ]; then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    echo "No container runtime answers: installing ${packages[*]} to run them as local processes."
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  fi
fi

exec dotnet run --project src/GoblinAspire.AppHost -c Release -- "$@"
