#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL 15 cluster: initdb + pg_ctl in a temporary folder,
# socket only (no TCP port), fsync off (PG_FSYNC=on keeps it on, for benchmarks), removed afterwards. Exports TEST_DATABASE_URL and
# REQUIRE_POSTGRES_TESTS=1 for the command, so PostgreSQL tests fail rather than skip.
#
#   scripts/with-postgres.sh cargo test --workspace
#
# As root (CI), the cluster runs as the `postgres` user. Needs the postgresql-15 server binaries.
set -euo pipefail

bindir=""
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ]; then
  echo "with-postgres: no PostgreSQL server binaries found (apt-get install postgresql-15)" >&2
  exit 1
fi

pgdir=$(mktemp -d /tmp/meterhook-pg.XXXXXX)
chmod 755 "$pgdir"
run_pg() {
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres:postgres "$pgdir"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}
stop() {
  run_pg "$bindir/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pgdir"
}
trap stop EXIT

user=$( [ "$(id -u)" = 0 ] && echo postgres || id -un )
run_pg "$bindir/initdb" -D "$pgdir/data" -U "$user" --auth=trust --no-sync -E UTF8 >/dev/null
run_pg "$bindir/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
  -o "-c listen_addresses='' -c unix_socket_directories=$pgdir -c fsync=${PG_FSYNC:-off} -c full_page_writes=${PG_FSYNC:-off} -c max_connections=200" \
  start >/dev/null

export TEST_DATABASE_URL="postgresql:///postgres?host=$pgdir&user=$user"
export REQUIRE_POSTGRES_TESTS=1
export PG_TEST_DIR="$pgdir" PG_TEST_BIN="$bindir"
echo "with-postgres: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $pgdir" >&2
"$@"
