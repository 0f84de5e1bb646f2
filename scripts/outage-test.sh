#!/usr/bin/env bash
# PostgreSQL outage: while PostgreSQL is down, meterhook still acknowledges every webhook (it keeps
# the events in its local SQLite spool and answers 200 "spooled"); once PostgreSQL is back, the
# background drain moves every spooled event into PostgreSQL and processes each exactly once, so
# nothing acknowledged is lost, duplicated or left unprocessed, and each reading becomes one meter
# entry.
#
# What it does: on a throwaway cluster from scripts/with-postgres.sh (it runs itself again inside
# that script when needed), creates a database, starts meterhook on 127.0.0.1 with a spool file in
# a temporary folder, registers vehicles, sends --before events with scripts/loadgen.py, stops
# PostgreSQL (`pg_ctl -m fast stop`, as the postgres user when run as root), sends --after more
# events (every one must be answered 2xx), starts PostgreSQL again, and polls (at most --wait
# seconds) until every acknowledged event is stored and processed in PostgreSQL. Then it checks:
# every acknowledged id is stored exactly once, none is unprocessed, every outcome is `created`,
# the meter entries equal the distinct readings sent, and the spool is empty.
#
#   scripts/outage-test.sh                         # 50 + 50 events
#   scripts/outage-test.sh --before 200 --after 300 --threads 4
#
# Options: --before N (50), --after M (50), --threads N (4), --vehicles N (2), --wait S (90),
# --no-build (use target/release/meterhook as it is), --bin PATH (test that binary, no build),
# --keep (keep the temporary folder). Prints the figures; exits 1 when a check fails. Needs the
# PostgreSQL server binaries (postgresql-15). Everything started here is stopped on exit;
# traffic stays on 127.0.0.1 and a Unix socket. Do not export METERHOOK_* variables meterhook
# does not know: it refuses to start with them.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
orig_args=("$@")
before=50 after=50 threads=4 nvehicles=2 wait_s=90 build=1 bin="" keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --before) before=$2; shift 2 ;;
    --after) after=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --vehicles) nvehicles=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin) bin=$2; build=0; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "outage-test: unknown option $1" >&2; usage ;;
  esac
done
for n in "$before" "$after" "$threads" "$nvehicles" "$wait_s"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "outage-test: not a whole number: $n" >&2; exit 2; }
done

if [ -z "${PG_TEST_DIR:-}" ]; then
  exec "$root/scripts/with-postgres.sh" "$0" "${orig_args[@]}"
fi

if [ "$build" = 1 ]; then
  echo "outage-test: cargo build --release -p meterhook" >&2
  (cd "$root" && cargo build --release -p meterhook)
fi
bin=${bin:-$root/target/release/meterhook}
[[ "$bin" = /* ]] || bin="$PWD/$bin"
[ -x "$bin" ] || { echo "outage-test: no binary at $bin (build it: cargo build --release -p meterhook)" >&2; exit 1; }

# The cluster of with-postgres.sh: same data folder, socket folder and settings.
run_pg() {
  # From /: the postgres user cannot enter this script's private temporary folder.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
pg_stop() { run_pg "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null; }
pg_start() {
  run_pg "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories=$PG_TEST_DIR -c fsync=${PG_FSYNC:-off} -c full_page_writes=${PG_FSYNC:-off} -c max_connections=200" \
    start >/dev/null
}

. "$root/scripts/lib/harness.sh"
harness_start outage-test
harness_create_db outage
cd "$tmp" # no meterhook.toml / .env from elsewhere

# Only serve and migrate create a database; vehicles add needs one.
"$bin" migrate >/dev/null
vehicles=""
for i in $(seq 1 "$nvehicles"); do
  "$bin" vehicles add "outage-sc-$i" --vehicle-id "outage-car-$i" >/dev/null
  vehicles+="${vehicles:+,}outage-sc-$i"
done

"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 30))
until grep -q "meterhook listening on" "$tmp/server.log"; do
  kill -0 "$server_pid" 2>/dev/null || { echo "outage-test: meterhook exited:" >&2; tail -20 "$tmp/server.log" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "outage-test: meterhook not listening after 30 s" >&2; exit 1; }
  sleep 0.05
done

# load PHASE COUNT START_SEQ: sends COUNT events (bounded by time too), appends their acked ids.
load() {
  python3 "$root/scripts/loadgen.py" --url "http://127.0.0.1:$port/api/smartcar/webhook" \
    --token "$SMARTCAR_MANAGEMENT_TOKEN" --vehicles "$vehicles" --threads "$threads" \
    --count "$2" --seconds 300 --timeout 30 --max-attempts 1 --start-seq "$3" --quiet \
    --acked-file "$tmp/acked-$1.txt" --id-prefix "outage-$1-$$" >"$tmp/loadgen-$1.out" &
  loadgen_pid=$!
  wait "$loadgen_pid"
  loadgen_pid=""
}
field() { awk -F': ' -v k="$2" '$1 == k { print $2 }' "$1"; }
lines() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }
spool_count() {
  python3 - "$tmp/spool.db" <<'EOF'
import os, sqlite3, sys
if not os.path.exists(sys.argv[1]):
    print(0)
else:
    print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM smartcar_webhook_events").fetchone()[0])
EOF
}

echo "outage-test: $before events with PostgreSQL up" >&2
load up "$before" 0
echo "outage-test: stopping PostgreSQL (pg_ctl -m fast stop)" >&2
pg_stop
outage_start=$SECONDS
echo "outage-test: $after events with PostgreSQL down" >&2
# Sequence numbers go on after the first phase's, so every reading is new and later in time.
load down "$after" "$before"
outage_seconds=$((SECONDS - outage_start))
spooled=$(spool_count)
echo "outage-test: starting PostgreSQL again" >&2
pg_start
recovery_start=$SECONDS

cat "$tmp/acked-up.txt" "$tmp/acked-down.txt" 2>/dev/null >"$tmp/acked.txt" || true
check() {
  "$bin" events list --limit 1000000 --json >"$tmp/events.json"
  python3 - "$tmp/acked.txt" "$tmp/events.json" <<'EOF'
import collections, json, sys
acked = [l.strip() for l in open(sys.argv[1]) if l.strip()]
events = json.load(open(sys.argv[2]))
stored = collections.Counter(e["event_id"] for e in events)
processed = {e["event_id"] for e in events if e["processed"]}
outcomes = collections.Counter(e["outcome"] for e in events if e["event_id"] in set(acked))
# Ids are PREFIX-VEHICLE-SEQ: one reading per (vehicle, sequence number).
readings = {tuple(a.rsplit("-", 2)[-2:]) for a in acked}
print(f"acked_distinct: {len(set(acked))}")
print(f"stored: {sum(stored.values())}")
print(f"stored_acked: {sum(1 for a in set(acked) if a in stored)}")
print(f"missing: {sum(1 for a in set(acked) if a not in stored)}")
print(f"stored_more_than_once: {sum(1 for a in set(acked) if stored[a] > 1)}")
print(f"unprocessed: {sum(1 for a in set(acked) if a in stored and a not in processed)}")
print(f"distinct_readings: {len(readings)}")
print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
EOF
}
deadline=$((SECONDS + wait_s))
while :; do
  check >"$tmp/check.txt" 2>"$tmp/check.err" || true
  if [ "$(field "$tmp/check.txt" missing)" = 0 ] && [ "$(field "$tmp/check.txt" unprocessed)" = 0 ]; then break; fi
  if [ $SECONDS -ge $deadline ]; then echo "outage-test: not all drained and processed after $wait_s s" >&2; break; fi
  sleep 1
done
recovery_seconds=$((SECONDS - recovery_start))
entries=0
for i in $(seq 1 "$nvehicles"); do
  n=$("$bin" entries list --vehicle-id "outage-car-$i" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  entries=$((entries + n))
done
left_in_spool=$(spool_count)
kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=""

acked_up=$(lines "$tmp/acked-up.txt") acked_down=$(lines "$tmp/acked-down.txt")
cat <<EOF
sent before the outage: $(field "$tmp/loadgen-up.out" sent)
acknowledged before the outage: $acked_up
sent during the outage: $(field "$tmp/loadgen-down.out" sent)
acknowledged during the outage: $acked_down ($(field "$tmp/loadgen-down.out" errors) failed attempts; ${outage_seconds}s)
answer time before the outage: p50 $(field "$tmp/loadgen-up.out" latency_ms_p50) ms, max $(field "$tmp/loadgen-up.out" latency_ms_max) ms
answer time during the outage: p50 $(field "$tmp/loadgen-down.out" latency_ms_p50) ms, max $(field "$tmp/loadgen-down.out" latency_ms_max) ms
in the spool when PostgreSQL came back: $spooled
drained and processed within: ${recovery_seconds}s
$(cat "$tmp/check.txt")
meter entries: $entries
left in the spool: $left_in_spool
EOF

fail=0
bad() { echo "outage-test: FAIL: $*" >&2; fail=1; }
[ "$acked_up" = "$before" ] || bad "$acked_up of $before events acknowledged before the outage"
[ "$acked_down" = "$after" ] || bad "$acked_down of $after events acknowledged during the outage"
[ "$spooled" = "$after" ] || bad "$spooled events in the spool, expected $after"
[ "$(field "$tmp/check.txt" missing)" = 0 ] || bad "acknowledged events missing from PostgreSQL"
[ "$(field "$tmp/check.txt" stored_more_than_once)" = 0 ] || bad "events stored more than once"
[ "$(field "$tmp/check.txt" unprocessed)" = 0 ] || bad "events left unprocessed"
[ "$(field "$tmp/check.txt" stored)" = $((before + after)) ] || bad "stored events != $((before + after))"
[ "$entries" = "$(field "$tmp/check.txt" distinct_readings)" ] || bad "$entries meter entries for $(field "$tmp/check.txt" distinct_readings) distinct readings"
[ "$(field "$tmp/check.txt" outcomes)" = "created=$((before + after))" ] || bad "outcomes are not all created"
[ "$left_in_spool" = 0 ] || bad "$left_in_spool events left in the spool"
[ "$fail" = 0 ] && echo "outage-test: PASS" >&2
exit "$fail"
