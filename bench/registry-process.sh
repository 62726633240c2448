# Sourced by the registry benchmarks after bench/postgres.sh and `pg_start registrydb`. registry_start [NAME=value ...]
# starts the Release ModelRegistry on port $registry, its store under $work/store, with the given settings and then
# REGISTRY_EXTRA_ENV ("NAME=value ..."); adds it to pids, waits until it is healthy and sets base to its URL.
registry_start() {
  (
    export HTTP_PORTS=$registry Logging__LogLevel__Default=Warning ModelRegistry__ArtifactRoot="$work/store" \
      ConnectionStrings__registrydb="$(pg_connection registrydb)" \
      ModelRegistry__Storage__SigningSecret="$(head -c 32 /dev/urandom | base64)"
    [ $# -gt 0 ] && export "$@"
    [ -n "${REGISTRY_EXTRA_ENV:-}" ] && export ${REGISTRY_EXTRA_ENV}
    exec dotnet src/GoblinAspire.ModelRegistry/bin/Release/net10.0/GoblinAspire.ModelRegistry.dll
  ) & pids+=($!)
  base="http://127.0.0.1:$registry"
  for _ in $(seq 1 100); do curl -fs -o /dev/null "$base/health" && break; sleep 0.2; done
}
