# Sourced by the bench scripts: a throwaway PostgreSQL cluster in $work on port $pg_port, password "bench".
# Defines pg_start and pg_stop (the server runs as 'postgres' when the script runs as root), and bench_cleanup for
# `trap bench_cleanup EXIT`: it stops the processes the script added to pids, waits for them, since the services
# flush to PostgreSQL as they stop, then stops PostgreSQL and removes $work.
pg_bin="$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1)")"
[ -x "$pg_bin/initdb" ] || { echo "PostgreSQL server binaries are required: sudo apt-get install -y postgresql" >&2; exit 1; }
as_pg=(); [ "$(id -u)" -eq 0 ] && as_pg=(runuser -u postgres --)

pg_start() { # database names...
  chmod 777 "$work"
  echo bench >"$work/pw"
  "${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U postgres --pwfile "$work/pw" --auth scram-sha-256 -E UTF8 --locale C >/dev/null
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c max_connections=300" -w start >/dev/null
  for database in "$@"; do PGPASSWORD=bench psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE $database" >/dev/null; done
}

pg_stop() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true; }

pg_connection() { echo "Host=127.0.0.1;Port=$pg_port;Username=postgres;Password=bench;Database=$1"; }

pids=()
bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pg_stop
  rm -rf "$work"
}
