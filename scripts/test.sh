#!/usr/bin/env bash
# The test command: every test of the workspace. With the PostgreSQL server binaries on the machine
# (postgresql-15, as on this project's machines) the PostgreSQL tests run too, against a throwaway
# cluster; without them they are skipped, unless REQUIRE_POSTGRES_TESTS=1 (CI), which fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exec scripts/with-postgres.sh cargo test --workspace --locked "$@"
fi
if [ "${REQUIRE_POSTGRES_TESTS:-}" = 1 ]; then
  echo "test.sh: REQUIRE_POSTGRES_TESTS=1 but no PostgreSQL server binaries (apt-get install postgresql-15)" >&2
  exit 1
fi
echo "test.sh: no PostgreSQL server binaries; running the SQLite tests only" >&2
exec cargo test --workspace --locked "$@"
