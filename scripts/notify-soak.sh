#!/usr/bin/env bash
# A soak of the notifications: the receiver is down for a while, then answers 500 at random, then
# well; every change must end delivered, and a change received more than once must only be a
# retry (the same webhook-id). The receiver verifies each message with the official Standard
# Webhooks library (scripts/notify_receiver.py, standardwebhooks 1.1.0 from PyPI).
#
# What it does: a fresh SQLite database in a temporary folder (or, with --postgres, a database on
# a throwaway cluster from scripts/with-postgres.sh), the receiver on a free loopback port, down
# (connections closed unanswered) for --down seconds, then answering 500 to half the messages
# for --flaky seconds, then 204; `meterhook serve` sending to it with a short retry schedule
# (METERHOOK_NOTIFY_RETRY_SCHEDULE, default 1s,2s,4s,8s,15s,30s,30s,30s,30s,30s so the soak is
# bounded); changes made with the CLI (deactivate / activate of --vehicles vehicles) for
# --seconds seconds. Then it waits (at most --wait seconds) until every change has been answered
# 204, and prints: changes, messages received, retries (messages beyond the first per
# webhook-id), duplicates (a webhook-id answered 2xx more than once), unverified, failed (given
# up on). Exits 1 unless every change was delivered and unverified and failed are 0.
#
#   scripts/notify-soak.sh                     # 60 s down, 60 s flaky, 150 s of changes
#   scripts/notify-soak.sh --down 10 --flaky 10 --seconds 30
#   scripts/with-postgres.sh scripts/notify-soak.sh --postgres
#
# Options: --down S (60), --flaky S (60), --seconds S (150), --vehicles N (5), --wait S (300),
# --schedule LIST, --postgres, --bin PATH (no build), --keep.
# Everything stays in a temporary folder, removed at the end; every process started here is
# killed on exit. Traffic goes to 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
down=60 flaky=60 seconds=150 nvehicles=5 wait_s=300 postgres=0 bin="" keep=0
schedule="1s,2s,4s,8s,15s,30s,30s,30s,30s,30s"
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --down) down=$2; shift 2 ;;
    --flaky) flaky=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --vehicles) nvehicles=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    --schedule) schedule=$2; shift 2 ;;
    --postgres) postgres=1; shift ;;
    --bin) bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) usage ;;
  esac
done
if [ -z "$bin" ]; then
  (cd "$root" && cargo build -q --release -p meterhook)
  bin=$root/target/release/meterhook
fi
[[ "$bin" = /* ]] || bin="$PWD/$bin"
[ -x "$bin" ] || { echo "notify-soak: no binary at $bin" >&2; exit 1; }

venv=$root/target/notify-venv
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q standardwebhooks==1.1.0
fi

. "$root/scripts/lib/harness.sh"
harness_start notify-soak
unset METERHOOK_NOTIFY_URL METERHOOK_NOTIFY_SECRET METERHOOK_NOTIFY_ALLOW_HTTP
if [ "$postgres" = 1 ]; then
  harness_create_db soak
else
  export DATABASE_URL="sqlite://$tmp/meterhook.db"
fi
cd "$tmp"
"$bin" migrate >/dev/null
for i in $(seq 1 "$nvehicles"); do "$bin" vehicles add "soak-sc-$i" --vehicle-id "soak-car-$i" >/dev/null; done

# Changes recorded before serve turns notifications on are not sent.
base=$("$bin" changes --json 2>/dev/null | wc -l)
secret=$("$bin" notify new-secret)
start=$(date +%s)
"$venv/bin/python" "$root/scripts/notify_receiver.py" --secret "$secret" \
  --port-file "$tmp/receiver.port" --log "$tmp/received.jsonl" \
  --down-until $((start + down)) --flaky-until $((start + down + flaky)) &
loadgen_pid=$! # the harness kills it on exit
until [ -s "$tmp/receiver.port" ]; do sleep 0.05; done
export METERHOOK_NOTIFY_URL="http://127.0.0.1:$(cat "$tmp/receiver.port")/hooks/meterhook"
export METERHOOK_NOTIFY_SECRET="$secret"
export METERHOOK_NOTIFY_RETRY_SCHEDULE="$schedule"

"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 30))
until grep -q "meterhook listening on" "$tmp/server.log" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || { echo "notify-soak: serve exited:" >&2; tail -20 "$tmp/server.log" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "notify-soak: serve did not start" >&2; exit 1; }
  sleep 0.05
done
echo "notify-soak: receiver down ${down}s, then 500 at random ${flaky}s, then well; changes for ${seconds}s" >&2

end=$((SECONDS + seconds))
round=0
while [ $SECONDS -lt $end ]; do
  round=$((round + 1))
  for i in $(seq 1 "$nvehicles"); do
    "$bin" vehicles deactivate "soak-sc-$i" >/dev/null
    "$bin" vehicles activate "soak-sc-$i" >/dev/null
  done
done

"$bin" changes --after "$base" --json 2>/dev/null \
  | python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in sys.stdin]' >"$tmp/expected.sent.txt"

report() {
  python3 - "$tmp/received.jsonl" "$tmp/expected.sent.txt" <<'PY'
import collections, json, sys
received = [json.loads(l) for l in open(sys.argv[1])]
expected = set(l.strip() for l in open(sys.argv[2]) if l.strip())
per_id = collections.Counter(m["id"] for m in received)
ok = collections.Counter(m["id"] for m in received if m["verified"] and 200 <= m["status"] < 300)
delivered = expected & set(ok)
print(json.dumps({
    "changes": len(expected),
    "delivered": len(delivered),
    "messages": len(received),
    "retries": sum(n - 1 for n in per_id.values()),
    "duplicates": sum(1 for n in ok.values() if n > 1),
    "unverified": sum(1 for m in received if m["verified"] is False),
    "unexpected": len(set(ok) - expected),
}))
PY
}
deadline=$((SECONDS + wait_s))
while :; do
  figures=$(report)
  delivered=$(printf '%s' "$figures" | python3 -c 'import json,sys; f=json.load(sys.stdin); print(int(f["delivered"] == f["changes"]))')
  [ "$delivered" = 1 ] && break
  if [ $SECONDS -ge $deadline ]; then
    echo "notify-soak: not every change delivered within ${wait_s}s: $figures" >&2
    "$bin" notify status >&2 || true
    exit 1
  fi
  sleep 1
done
failed=$("$bin" notify status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["failed"])')
echo "notify-soak: $figures, failed $failed"
printf '%s' "$figures" | python3 -c '
import json, sys
f = json.load(sys.stdin)
sys.exit(0 if f["unverified"] == 0 and f["unexpected"] == 0 else 1)' && [ "$failed" = 0 ]
