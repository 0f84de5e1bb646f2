# Shared set-up of the scripts that run meterhook under test (crash-test.sh, outage-test.sh).
# Source it, then call `harness_start NAME` after setting `keep` (1 keeps the temporary folder).
#
# harness_start NAME: makes $tmp (/tmp/meterhook-NAME.XXXXXX); on exit kills $server_pid and
# $loadgen_pid if they run and removes $tmp; picks a free loopback $port; exports a fresh
# SMARTCAR_MANAGEMENT_TOKEN, METERHOOK_LISTEN and METERHOOK_SPOOL_PATH.
#
# harness_create_db NAME: creates database meterhook_NAME on the throwaway cluster of
# scripts/with-postgres.sh and exports DATABASE_URL for it.

harness_start() {
  harness_name=$1
  tmp=$(mktemp -d "/tmp/meterhook-$harness_name.XXXXXX")
  server_pid="" loadgen_pid=""
  trap harness_cleanup EXIT
  trap 'exit 130' INT TERM
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export SMARTCAR_MANAGEMENT_TOKEN="$harness_name-token-$RANDOM$RANDOM-0123456789"
  export METERHOOK_LISTEN="127.0.0.1:$port"
  export METERHOOK_SPOOL_PATH="$tmp/spool.db"
  unset SMARTCAR_WEBHOOK_SECRET METERHOOK_RETENTION
}

harness_cleanup() {
  local status=$?
  for pid in $server_pid $loadgen_pid; do
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  if [ "${keep:-0}" = 1 ]; then echo "$harness_name: kept $tmp" >&2; else rm -rf "$tmp"; fi
  exit "$status"
}

harness_create_db() {
  "$PG_TEST_BIN/psql" -X -q -d "$TEST_DATABASE_URL" -c "CREATE DATABASE meterhook_$1" >/dev/null
  DATABASE_URL=$(printf '%s' "$TEST_DATABASE_URL" | sed "s#/postgres?#/meterhook_$1?#")
  export DATABASE_URL
}
