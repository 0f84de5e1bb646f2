#!/usr/bin/env bash
# Durability under crashes: an event meterhook answered 2xx is never lost, even when the process
# is killed with SIGKILL (no shutdown, no flush) at any moment while it serves a steady load.
#
# What it does: builds the release binary, makes a temporary folder with a fresh SQLite database
# (or, with --postgres, a database in a throwaway PostgreSQL cluster from scripts/with-postgres.sh),
# registers vehicles, starts meterhook on 127.0.0.1, runs scripts/loadgen.py against it for the
# whole test (it records every acknowledged event id, flushed line by line), and `kill -9`s the
# server --kills times at random intervals of 1-2 s, restarting it on the same port each time.
# Then it lets the load end, starts the server once more, waits (bounded, --settle) for events
# whose processing a kill interrupted to be retried, and compares the acknowledged ids with the
# stored ones (`meterhook events list --limit 1000000 --json`).
#
# It prints sent / acknowledged / stored / missing (acknowledged but not stored) plus
# duplicates (an id stored twice), unprocessed and the outcomes; it exits 1 when missing,
# duplicates or (with --settle > 0) unprocessed is not 0.
#
#   scripts/crash-test.sh                          # SQLite, 5 kills, 4 threads
#   scripts/crash-test.sh --kills 3 --seconds 8 --threads 2
#   scripts/crash-test.sh --postgres               # the same on a throwaway PostgreSQL cluster
#
# Options: --kills K (5), --seconds S (least load duration; stretched to fit the kills),
# --threads N (4), --vehicles N (3), --settle S (60; 0 skips waiting for and checking
# unprocessed events), --postgres, --no-build (use target/release/meterhook as it is),
# --bin PATH (test that binary, no build), --keep (keep the temporary folder, print its path).
# Do not export METERHOOK_* variables meterhook does not know: it refuses to start with them.
# Everything stays in a temporary folder that is removed at the end; every process started here
# is killed on exit. Traffic goes to 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
orig_args=("$@")
kills=5 seconds=10 threads=4 nvehicles=3 settle=60 build=1 bin="" postgres=0 keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) kills=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --vehicles) nvehicles=$2; shift 2 ;;
    --settle) settle=$2; shift 2 ;;
    --postgres) postgres=1; shift ;;
    --no-build) build=0; shift ;;
    --bin) bin=$2; build=0; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "crash-test: unknown option $1" >&2; usage ;;
  esac
done
for n in "$kills" "$seconds" "$threads" "$nvehicles" "$settle"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "crash-test: not a whole number: $n" >&2; exit 2; }
done

if [ "$postgres" = 1 ] && [ -z "${PG_TEST_DIR:-}" ]; then
  # Run again inside a throwaway cluster; with-postgres.sh removes it afterwards.
  exec "$root/scripts/with-postgres.sh" "$0" "${orig_args[@]}"
fi

if [ "$build" = 1 ]; then
  echo "crash-test: cargo build --release -p meterhook" >&2
  (cd "$root" && cargo build --release -p meterhook)
fi
bin=${bin:-$root/target/release/meterhook}
[[ "$bin" = /* ]] || bin="$PWD/$bin"
[ -x "$bin" ] || { echo "crash-test: no binary at $bin (build it: cargo build --release -p meterhook)" >&2; exit 1; }

. "$root/scripts/lib/harness.sh"
harness_start crash-test
if [ "$postgres" = 1 ]; then
  harness_create_db crash
  backend=postgres
else
  export DATABASE_URL="sqlite://$tmp/meterhook.db"
  backend=sqlite
fi
cd "$tmp" # no meterhook.toml / .env from elsewhere

# Only serve and migrate create a database; vehicles add needs one.
"$bin" migrate >/dev/null
vehicles=""
for i in $(seq 1 "$nvehicles"); do
  "$bin" vehicles add "crash-sc-$i" --vehicle-id "crash-car-$i" >/dev/null
  vehicles+="${vehicles:+,}crash-sc-$i"
done

starts=0
start_server() {
  starts=$((starts + 1))
  local log="$tmp/server-$starts.log"
  "$bin" serve >"$log" 2>&1 &
  server_pid=$!
  local deadline=$((SECONDS + 30))
  until grep -q "meterhook listening on" "$log"; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "crash-test: meterhook exited at start $starts:" >&2; tail -20 "$log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "crash-test: meterhook not listening after 30 s (start $starts)" >&2; tail -20 "$log" >&2; return 1
    fi
    sleep 0.05
  done
}

# Long enough for the kills (1-2 s of serving each, plus the restart).
load_seconds=$(( seconds > kills * 3 + 3 ? seconds : kills * 3 + 3 ))
echo "crash-test: $backend, $kills kills, $threads threads, $nvehicles vehicles, load for $load_seconds s, port $port" >&2
start_server
python3 "$root/scripts/loadgen.py" --url "http://127.0.0.1:$port/api/smartcar/webhook" \
  --token "$SMARTCAR_MANAGEMENT_TOKEN" --vehicles "$vehicles" --threads "$threads" \
  --seconds "$load_seconds" --acked-file "$tmp/acked.txt" --id-prefix "crash-$$" \
  >"$tmp/loadgen.out" &
loadgen_pid=$!

for k in $(seq 1 "$kills"); do
  sleep "1.$((RANDOM % 10))"
  kill -0 "$loadgen_pid" 2>/dev/null || echo "crash-test: warning: the load ended before kill $k" >&2
  kill -9 "$server_pid" 2>/dev/null || echo "crash-test: warning: meterhook had already exited" >&2
  wait "$server_pid" 2>/dev/null || true
  echo "crash-test: kill -9 $k/$kills (acknowledged so far: $(wc -l <"$tmp/acked.txt" 2>/dev/null || echo 0))" >&2
  start_server
done

wait "$loadgen_pid" || { echo "crash-test: loadgen failed" >&2; exit 1; }
loadgen_pid=""
# The load is over: stop this server and start it once more, as after a crash.
kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
start_server

report() {
  "$bin" events list --limit 1000000 --json >"$tmp/events.json"
  python3 - "$tmp/acked.txt" "$tmp/events.json" "$tmp/loadgen.out" <<'EOF'
import collections, json, os, sys
acked = set(l.strip() for l in open(sys.argv[1]) if l.strip()) if os.path.exists(sys.argv[1]) else set()
events = json.load(open(sys.argv[2]))
ids = collections.Counter(e["event_id"] for e in events)
loadgen = dict(l.split(": ", 1) for l in open(sys.argv[3]).read().splitlines() if ": " in l)
missing = sorted(acked - set(ids))
unprocessed = [e["event_id"] for e in events if not e["processed"]]
outcomes = collections.Counter(e["outcome"] for e in events)
print(f"sent: {loadgen.get('sent', '?')}")
print(f"acknowledged: {len(acked)}")
print(f"stored: {len(ids)}")
print(f"missing: {len(missing)}")
print(f"duplicates: {sum(n - 1 for n in ids.values())}")
print(f"unprocessed: {len(unprocessed)}")
print(f"load errors (failed attempts): {loadgen.get('errors', '?')}")
print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
for m in missing[:20]:
    print(f"  missing: {m}")
EOF
}

# Events whose processing a kill interrupted are retried once they are 30 s old.
if [ "$settle" -gt 0 ]; then
  deadline=$((SECONDS + settle))
  while :; do
    left=$("$bin" events list --limit 1000000 --json | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if not e["processed"]))')
    [ "$left" = 0 ] && break
    if [ $SECONDS -ge $deadline ]; then echo "crash-test: $left events still unprocessed after $settle s" >&2; break; fi
    sleep 2
  done
fi

report | tee "$tmp/report.txt"
entries=0
for i in $(seq 1 "$nvehicles"); do
  n=$("$bin" entries list --vehicle-id "crash-car-$i" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  entries=$((entries + n))
done
echo "meter entries: $entries"
kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
server_pid=""

get() { awk -F': ' -v k="$1" '$1 == k { print $2 }' "$tmp/report.txt"; }
fail=0
[ "$(get missing)" = 0 ] || { echo "crash-test: FAIL: $(get missing) acknowledged events are not stored" >&2; fail=1; }
[ "$(get duplicates)" = 0 ] || { echo "crash-test: FAIL: $(get duplicates) event ids stored more than once" >&2; fail=1; }
if [ "$settle" -gt 0 ] && [ "$(get unprocessed)" != 0 ]; then
  echo "crash-test: FAIL: $(get unprocessed) stored events still unprocessed after $settle s" >&2; fail=1
fi
[ "$(get acknowledged)" -gt 0 ] || { echo "crash-test: FAIL: nothing was acknowledged" >&2; fail=1; }
[ "$fail" = 0 ] && echo "crash-test: PASS ($kills kills, every acknowledged event stored)" >&2
exit "$fail"
