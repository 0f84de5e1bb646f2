#!/usr/bin/env bash
# Ingest benchmark: the full path (verify, store durably, apply the rules, write the entry and the
# sync log, answer) against the same server's GET /healthz ceiling, measured side by side with wrk.
#
#   scripts/bench.sh                       # SQLite, then PostgreSQL (throwaway cluster, fsync on)
#   scripts/bench.sh --backend sqlite --connections 64 --duration 10
#   scripts/bench.sh --rows 1000000        # pre-fill the events and meter entries tables first
#   scripts/bench.sh --scenario dense      # sparse (default), dense, refused or seed (bench/gen_events.py)
#   scripts/bench.sh --sustained 10        # one run of 10 minutes, with the rate of every minute
#   scripts/bench.sh --sweep               # 1..256 connections, plot into docs/bench-sweep.png
#   scripts/bench.sh --smoke               # a few seconds, to check that the script still works
#
# Prints, per run: the /healthz rate, the ingest rate, their ratio, p50/p99, the server's CPU and
# bytes written per delivery, its peak RSS, and the row counts that prove the work happened.
# Extra METERHOOK_* settings in the environment reach the server (e.g. METERHOOK_MAX_SPEED_KMH=0
# for --scenario seed). Needs wrk (installed with apt-get when
# missing) and, for --sweep, matplotlib (installed with pip when missing). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

backend=both
connections=64
duration=10
events=""
rows=0
sweep=0
smoke=0
vehicles=100
scenario=sparse
sustained=0
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) backend=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --sweep) sweep=1; shift ;;
    --scenario) scenario=$2; shift 2 ;;
    --sustained) sustained=$2; duration=$(( $2 * 60 )); shift 2 ;;
    --smoke) smoke=1; duration=2; connections=8; shift ;;
    --inner-postgres) backend=inner-postgres; shift ;;
    *) echo "bench: unknown option $1" >&2; exit 2 ;;
  esac
done
# Enough unique events that wrk never wraps around to redeliveries (it reports it if it does).
events=${events:-$(( smoke ? 5000 : duration * 30000 ))}
more=(--scenario "$scenario")
if [ "$sustained" -gt 0 ]; then
  events=$(( sustained * 60 * 9000 ))
  more+=(--sustained "$sustained")
fi

if [ "$backend" = both ]; then
  "$0" --backend sqlite --connections "$connections" --duration "$duration" --events "$events" --rows "$rows" \
    "${more[@]}" $( [ $sweep = 1 ] && echo --sweep ) $( [ $smoke = 1 ] && echo --smoke )
  exec env PG_FSYNC=on scripts/with-postgres.sh "$0" --inner-postgres --connections "$connections" \
    --duration "$duration" --events "$events" --rows "$rows" "${more[@]}" $( [ $smoke = 1 ] && echo --smoke )
fi
if [ "$backend" = postgres ]; then
  exec env PG_FSYNC=on scripts/with-postgres.sh "$0" --inner-postgres --connections "$connections" \
    --duration "$duration" --events "$events" --rows "$rows" "${more[@]}" $( [ $sweep = 1 ] && echo --sweep ) $( [ $smoke = 1 ] && echo --smoke )
fi

if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release --locked -q -p meterhook
bin=$root/target/release/meterhook

work=$(mktemp -d /tmp/meterhook-bench.XXXXXX)
# The server's log goes to tmpfs, as it would go to journald through a pipe in production: a log
# file on the database's ext4 filesystem rides on every SQLite fsync (data=ordered) and turned
# into 100-500 ms commit stalls (docs/PERFORMANCE.md).
logdir=$(mktemp -d /dev/shm/meterhook-bench-log.XXXXXX 2>/dev/null || echo "$work")
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work" "$logdir"
}
trap cleanup EXIT

token=bench-token-0123456789abcdef
if [ "$backend" = inner-postgres ]; then
  name=bench_$$
  psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE $name" >/dev/null
  db_url=${TEST_DATABASE_URL/\/postgres\?//$name?}
  label="PostgreSQL 15 (local socket, fsync on, synchronous_commit on)"
else
  db_url="sqlite://$work/bench.db"
  label="SQLite (WAL, synchronous=FULL)"
fi
export SMARTCAR_MANAGEMENT_TOKEN=$token DATABASE_URL=$db_url METERHOOK_SPOOL_PATH=$work/spool.db RUST_LOG=${RUST_LOG:-info}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
export METERHOOK_LISTEN=127.0.0.1:$port

"$bin" migrate >/dev/null
for i in $(seq 0 $((vehicles - 1))); do
  printf -v v '%03d' "$i"
  "$bin" vehicles add "bench-vehicle-$v" --vehicle-id "car-$v" >/dev/null
done

if [ "$rows" -gt 0 ]; then
  # Events, and as many active meter entries of the benchmark's own vehicles, dated before the
  # run's readings (a second apart, a metre on each), so that every lookup walks a full index.
  echo "pre-filling $rows processed events and $rows meter entries…" >&2
  if [ "$backend" = inner-postgres ]; then
    psql "$db_url" -qc "INSERT INTO smartcar_webhook_events (event_id, event_type, smartcar_vehicle_id, payload, received_at, processed, processed_at, outcome, attempts)
      SELECT gen_random_uuid()::text, 'VEHICLE_STATE', 'prefill-vehicle', '{}', now() AT TIME ZONE 'UTC' - interval '1 day', true, now() AT TIME ZONE 'UTC' - interval '1 day', 'created', 1
      FROM generate_series(1, $rows) g;
      INSERT INTO meter_entries (vehicle_id, value_m, entry_date, source_type, void, created_at)
      SELECT 'car-' || lpad((g % $vehicles)::text, 3, '0'), g / $vehicles, TIMESTAMP '1990-01-01' + (g / $vehicles) * interval '1 second', 'prefill', false, now() AT TIME ZONE 'UTC'
      FROM generate_series(1, $rows) g" >/dev/null
  else
    python3 - "$work/bench.db" "$rows" "$vehicles" <<'PY'
import datetime, random, sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2]); vehicles = int(sys.argv[3])
start = datetime.datetime(1990, 1, 1)
with db:
    db.executemany(
        "INSERT INTO smartcar_webhook_events (event_id, event_type, smartcar_vehicle_id, payload, received_at, processed, processed_at, outcome, attempts) "
        "VALUES (?, 'VEHICLE_STATE', 'prefill-vehicle', '{}', datetime('now','-1 day'), 1, datetime('now','-1 day'), 'created', 1)",
        ((str(uuid.UUID(int=random.getrandbits(128), version=4)),) for i in range(n)))
    db.executemany(
        "INSERT INTO meter_entries (vehicle_id, value_m, entry_date, source_type, void, created_at) "
        "VALUES (?, ?, ?, 'prefill', 0, datetime('now'))",
        ((f"car-{g % vehicles:03d}", g // vehicles,
          (start + datetime.timedelta(seconds=g // vehicles)).strftime("%Y-%m-%d %H:%M:%S"))
         for g in range(1, n + 1)))
PY
  fi
fi

"$bin" serve >"$logdir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }
# The server's CPU time (user + system, clock ticks) and bytes it had written to storage.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
written_bytes() { awk '/^write_bytes/ {print $2}' "/proc/$server_pid/io"; }
# per_minute MINUTES: the deliveries answered in each minute, from the server's own counter.
per_minute() {
  local last now start
  # Minutes count from the first delivery: wrk takes a while to load a long events file.
  start=$(curl -s "$url/metrics" | awk '/^meterhook_events_received_total/ {n += $2} END {print n + 0}')
  last=$start
  while [ "$last" = "$start" ]; do
    sleep 0.2
    last=$(curl -s "$url/metrics" | awk '/^meterhook_events_received_total/ {n += $2} END {print n + 0}')
  done
  for m in $(seq $(( $1 - 1 ))); do
    sleep 60
    now=$(curl -s "$url/metrics" | awk '/^meterhook_events_received_total/ {n += $2} END {print n + 0}')
    echo "minute $m: $(( (now - last) / 60 )) deliveries/s" >&2
    last=$now
  done
}

# run_pair CONNECTIONS EVENTS_FILE: prints one line of figures.
run_pair() {
  local c=$1 file=$2 threads=$(( $1 < 2 ? 1 : 2 ))
  local health ingest
  health=$(wrk -t"$threads" -c"$c" -d"$(( duration > 10 ? 10 : duration ))s" -s scripts/bench/healthz.lua "$url/healthz" | grep '^RESULT')
  cpu0=$(cpu_ticks); io0=$(written_bytes)
  if [ "$sustained" -gt 0 ]; then per_minute "$sustained" & fi
  ingest=$(wrk -t"$threads" -c"$c" -d"${duration}s" -s scripts/bench/ingest.lua "$url/api/smartcar/webhook" -- "$file" "$threads" | grep '^RESULT')
  wait
  cpu1=$(cpu_ticks); io1=$(written_bytes)
  echo "$(( (cpu1 - cpu0) )) $(( io1 - io0 ))" > "$work/cost.txt"
  local hr ir cpu0 cpu1 io0 io1
  hr=$(python3 -c "print(round($(field requests "$health") / $(field seconds "$health")))")
  ir=$(python3 -c "print(round($(field requests "$ingest") / $(field seconds "$ingest")))")
  echo "$c $hr $ir $(field p50_ms "$ingest") $(field p99_ms "$ingest") $(field statuses "$ingest") $(field wrapped "$ingest") $(field errors "$ingest") $(field p99_ms "$health") $(field sent "$ingest") $threads"
}

# gen COUNT FILE PREFIX RUN: the RUN-th events file for this database (later runs' readings come
# after earlier ones', so that every run judges new readings, not repeats of the last run's).
gen() { python3 scripts/bench/gen_events.py --count "$1" --vehicles "$vehicles" --token "$token" --out "$2" --prefix "$3" --run "$4" --scenario "$scenario" 2>"$2.expected"; }

echo "== $label, $vehicles vehicles, scenario $scenario, $( [ "$rows" -gt 0 ] && echo "$rows rows pre-filled" || echo "empty tables" ), ${duration}s per run"
if [ $sweep = 1 ]; then
  echo "connections healthz_rps ingest_rps ingest_p50_ms ingest_p99_ms" > "$work/sweep.txt"
  run=0
  for c in 1 2 4 8 16 32 64 128 256; do
    gen "$events" "$work/events-$c.txt" "sweep$c" "$run"
    run=$((run + 1))
    read -r cc hr ir p50 p99 _ <<<"$(run_pair "$c" "$work/events-$c.txt")"
    echo "$cc $hr $ir $p50 $p99" | tee -a "$work/sweep.txt"
  done
  python3 -c "import matplotlib" 2>/dev/null || pip install -q matplotlib >/dev/null
  python3 scripts/bench/plot.py "$work/sweep.txt" "docs/bench-sweep.png" "$label"
  echo "plot: docs/bench-sweep.png"
fi

gen "$events" "$work/events.txt" main "${run:-0}"
read -r c hr ir p50 p99 statuses wrapped errors hp99 sent threads <<<"$(run_pair "$connections" "$work/events.txt")"
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
read -r ticks written < "$work/cost.txt"
hz=$(getconf CLK_TCK)
kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""

stats=$("$bin" stats --since 3650d --json)
python3 - "$stats" "$work/events.txt" "$rows" "$sent" "$threads" "$ticks" "$hz" "$written" <<PY
import json, sys
stats = json.loads(sys.argv[1]); rows = int(sys.argv[3])
# The distinct event ids wrk sent: each thread sent a prefix of its slice (every N-th line).
sent = [int(x) for x in sys.argv[4].split(",")]; nthreads = int(sys.argv[5])
lines = open(sys.argv[2]).read().splitlines()
ids = set()
for t, count in enumerate(sent):
    mine = lines[t::nthreads]
    for line in (mine * (count // max(len(mine), 1) + 1))[:count]:
        ids.add(json.loads(line.split(" ", 1)[1])["eventId"])
outcomes = dict(stats["events_by_outcome"])
stored = stats["events_total"] - rows
created = outcomes.get("created", 0) - rows
print(f"connections        {$c}")
print(f"healthz            {$hr} req/s (p99 {$hp99} ms)")
print(f"ingest             {$ir} req/s")
print(f"ratio              {$ir / $hr * 100:.1f} % of the healthz rate")
print(f"ingest latency     p50 {$p50} ms, p99 {$p99} ms")
answered = sum(sent)
ticks, hz, written = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
print(f"server CPU         {ticks / hz * 1e6 / max(answered, 1):.0f} us per delivery ({ticks / hz:.1f} s for {answered} requests)")
print(f"bytes written      {written / max(answered, 1):.0f} per delivery (the server process, WAL and checkpoints)")
print(f"server peak RSS    {$rss_kb / 1024:.1f} MB")
print(f"answers            {'$statuses'} (wrk errors {$errors}, wrapped around {$wrapped} times)")
print(f"distinct ids sent  {len(ids)}")
print(f"stored events      {stored} (outcomes: " + ", ".join(f"{k} {v - (rows if k == 'created' else 0)}" for k, v in sorted(outcomes.items())) + ")")
print(f"meter entries      {created} created; duplicates skipped {outcomes.get('duplicate', 0)}; pending {stats['pending']}")
if $sweep:
    print("(after --sweep, the stored counts include every run of the sweep)")
PY
