#!/usr/bin/env bash
# meterhook's notifications, verified by the official Standard Webhooks library: a Python receiver
# (scripts/notify_receiver.py) checks every message with `standardwebhooks` 1.1.0 from PyPI, as an
# app would, while the real binary serves and sends.
#
# What it does: installs standardwebhooks==1.1.0 into a virtual environment under target/ (once),
# makes a fresh SQLite database in a temporary folder, prints a secret with
# `meterhook notify new-secret`, starts the receiver on a free loopback port, checks that
# `meterhook doctor` gets its signed ping answered, starts `meterhook serve` with
# METERHOOK_NOTIFY_URL pointing at the receiver, makes changes with the CLI (registrations,
# deactivation, activation), and waits (at most --wait seconds) until every change listed by
# `meterhook changes --json` was received, verified and answered 204. Exits 1 if a message did
# not verify or a change did not arrive.
#
#   scripts/notify-verify.sh                      # builds target/debug/meterhook
#   scripts/notify-verify.sh --bin target/release/meterhook
#
# Options: --bin PATH (no build), --wait S (60), --keep (keep the temporary folder).
# Everything stays in a temporary folder, removed at the end; every process started here is
# killed on exit. Traffic goes to 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="" wait_s=60 keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) usage ;;
  esac
done
if [ -z "$bin" ]; then
  (cd "$root" && cargo build -q -p meterhook)
  bin=$root/target/debug/meterhook
fi
[[ "$bin" = /* ]] || bin="$PWD/$bin"
[ -x "$bin" ] || { echo "notify-verify: no binary at $bin" >&2; exit 1; }

venv=$root/target/notify-venv
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q standardwebhooks==1.1.0
fi

. "$root/scripts/lib/harness.sh"
harness_start notify-verify
unset METERHOOK_NOTIFY_URL METERHOOK_NOTIFY_SECRET METERHOOK_NOTIFY_ALLOW_HTTP
export DATABASE_URL="sqlite://$tmp/meterhook.db"
cd "$tmp"
"$bin" migrate >/dev/null

secret=$("$bin" notify new-secret)
"$venv/bin/python" "$root/scripts/notify_receiver.py" --secret "$secret" \
  --port-file "$tmp/receiver.port" --log "$tmp/received.jsonl" &
loadgen_pid=$! # the harness kills it on exit
deadline=$((SECONDS + 30))
until [ -s "$tmp/receiver.port" ]; do
  [ $SECONDS -lt $deadline ] || { echo "notify-verify: the receiver did not start" >&2; exit 1; }
  sleep 0.05
done
export METERHOOK_NOTIFY_URL="http://127.0.0.1:$(cat "$tmp/receiver.port")/hooks/meterhook"
export METERHOOK_NOTIFY_SECRET="$secret"

"$bin" doctor >"$tmp/doctor.out" 2>&1 || true
if ! grep -q "a signed meterhook.ping was answered 204" "$tmp/doctor.out"; then
  echo "notify-verify: doctor's ping was not verified:" >&2; cat "$tmp/doctor.out" >&2; exit 1
fi

"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + 30))
until grep -q "meterhook listening on" "$tmp/server.log" 2>/dev/null; do
  kill -0 "$server_pid" 2>/dev/null || { echo "notify-verify: serve exited:" >&2; tail -20 "$tmp/server.log" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "notify-verify: serve did not start" >&2; exit 1; }
  sleep 0.05
done

for i in 1 2 3; do "$bin" vehicles add "sc-$i" --vehicle-id "car-$i" >/dev/null; done
"$bin" vehicles deactivate sc-1 >/dev/null
"$bin" vehicles activate sc-1 >/dev/null
"$bin" changes --json 2>/dev/null | python3 -c 'import json,sys; [print(json.loads(l)["id"]) for l in sys.stdin]' \
  | sort >"$tmp/expected.txt"

count_ok() {
  python3 - "$tmp/received.jsonl" <<'PY'
import json, sys
ids = set()
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m["verified"] and m["status"] == 204:
        ids.add(m["id"])
print("\n".join(sorted(i for i in ids if i and i.startswith("chg_"))))
PY
}
deadline=$((SECONDS + wait_s))
while :; do
  count_ok >"$tmp/got.txt"
  if cmp -s "$tmp/expected.txt" "$tmp/got.txt"; then break; fi
  if [ $SECONDS -ge $deadline ]; then
    echo "notify-verify: not every change arrived within ${wait_s}s; expected:" >&2
    cat "$tmp/expected.txt" >&2; echo "verified:" >&2; cat "$tmp/got.txt" >&2; exit 1
  fi
  sleep 0.2
done
unverified=$(grep -c '"verified": false' "$tmp/received.jsonl" || true)
echo "notify-verify: $(wc -l <"$tmp/expected.txt") changes sent by meterhook, every one verified by standardwebhooks 1.1.0 (Python); $unverified unverified messages"
[ "$unverified" = 0 ] || exit 1
