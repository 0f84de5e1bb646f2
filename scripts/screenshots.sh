#!/usr/bin/env bash
# Screenshots of the status pages, rendered by headless Chromium from the real binary.
#
# What it does: makes a temporary folder with a fresh SQLite database, registers vehicles with the
# real CLI (`meterhook vehicles add`), starts meterhook on 127.0.0.1 with METERHOOK_UI_PASSWORD,
# sends a month of signed odometer, signal and error events and one `meterhook send-test-event`
# (python3's standard library signs and posts them, as Smartcar would), then asks each page with
# curl (it must answer 200) and has Chromium save a PNG of it: overview.png, events.png,
# vehicle.png and events-filtered.png in --out.
#
# The server can only receive deliveries now, so the 24-hour chart would show a single bar: the
# script also writes the event rows of earlier deliveries (ids `history-…`, audit rows only, no
# readings) straight into the database with python3's sqlite3, spread over the last 24 hours.
#
#   scripts/screenshots.sh                       # builds the debug binary first
#   scripts/screenshots.sh --bin target/release/meterhook --out /tmp/shots
#   scripts/screenshots.sh --readme-image        # also copies overview.png to docs/images/
#
# Options: --bin PATH (the binary to run; no build), --out DIR (target/screenshots),
# --readme-image (write docs/images/overview.png), --keep (keep the temporary folder).
# Chromium comes from Debian's `chromium` package; it is installed with apt-get when missing.
# It exits non-zero when a page does not answer 200 or a screenshot is missing or empty. Every
# process started here is stopped on exit. Traffic goes to 127.0.0.1 only.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="" out="$root/target/screenshots" readme=0 keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --readme-image) readme=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    *) echo "screenshots: unknown option $1" >&2; usage ;;
  esac
done

if [ -z "$bin" ]; then
  echo "screenshots: cargo build -p meterhook" >&2
  (cd "$root" && cargo build --locked -q -p meterhook)
  bin=$root/target/debug/meterhook
fi
[[ "$bin" = /* ]] || bin="$PWD/$bin"
[ -x "$bin" ] || { echo "screenshots: no binary at $bin" >&2; exit 1; }

if ! command -v chromium >/dev/null; then
  echo "screenshots: installing chromium (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
mkdir -p "$out"
[[ "$out" = /* ]] || out="$PWD/$out"

. "$root/scripts/lib/harness.sh"
harness_start screenshots
export DATABASE_URL="sqlite://$tmp/meterhook.db"
export METERHOOK_UI_PASSWORD="screenshots-$RANDOM$RANDOM-password"
cd "$tmp" # no meterhook.toml / .env from elsewhere

"$bin" migrate >/dev/null
"$bin" vehicles add sc-7f3a9c01 --vehicle-id van-07 >/dev/null
"$bin" vehicles add sc-2b81d4e5 --vehicle-id van-12 >/dev/null
"$bin" vehicles add sc-c04e77aa --vehicle-id truck-03 >/dev/null
"$bin" vehicles add sc-91aa0f3d --vehicle-id car-21 >/dev/null

"$bin" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null || { echo "screenshots: meterhook did not start" >&2; exit 1; }

python3 - "$base/api/smartcar/webhook" "$SMARTCAR_MANAGEMENT_TOKEN" <<'PY'
import hashlib, hmac, json, sys, time, urllib.error, urllib.request

url, token = sys.argv[1], sys.argv[2].encode()
now = int(time.time() * 1000)
H, D = 3_600_000, 86_400_000
sent = 0

def post(body):
    global sent
    raw = json.dumps(body).encode()
    sig = hmac.new(token, raw, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, raw, {"SC-Signature": sig, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.status == 200, r.status
    sent += 1

def state(vehicle, at, km=None, extra=()):
    signals = [dict(s, meta={"oemUpdatedAt": at, "retrievedAt": at + 400}, status={"value": "SUCCESS"}) for s in extra]
    if km is not None:
        signals.append({"code": "odometer-traveleddistance", "name": "TraveledDistance", "group": "Odometer",
                        "body": {"value": km, "unit": "km"},
                        "meta": {"oemUpdatedAt": at, "retrievedAt": at + 400}, "status": {"value": "SUCCESS"}})
    post({"eventId": f"{vehicle}-{at}-{km}", "eventType": "VEHICLE_STATE",
          "data": {"vehicle": {"id": vehicle}, "signals": signals},
          "meta": {"version": "4.0", "deliveryId": f"d-{at}", "deliveredAt": now, "mode": "LIVE"}})

# van-07: a month of readings twice a day, one read out of order, one impossible jump.
km = 48_210.0
for i in range(60, 0, -1):
    at = now - i * 12 * H - 5 * H
    km += 35 + (i * 37 % 60)
    soc = {"code": "tractionbattery-stateofcharge", "body": {"value": 40 + i % 55, "unit": "percent"}}
    rng = {"code": "tractionbattery-range", "body": {"value": 120 + (i * 7) % 180, "unit": "km"}}
    state("sc-7f3a9c01", at, round(km, 1), [soc, rng])
    if i == 41:
        state("sc-7f3a9c01", at - 3 * D, round(km + 400, 1))  # arrives late, contradicts its neighbours
    if i == 17:
        state("sc-7f3a9c01", at + 2 * H, round(km * 10, 1))  # a value no car could reach
    if i % 9 == 0:
        state("sc-7f3a9c01", at, round(km, 1))  # the same reading again: a duplicate
# van-12: readings, then its owner's account needs reconnecting.
km = 12_050.0
for i in range(20, 2, -1):
    km += 80
    state("sc-2b81d4e5", now - i * D, km)
post({"eventId": "err-van-12", "eventType": "VEHICLE_ERROR",
      "data": {"vehicle": {"id": "sc-2b81d4e5"}, "errors": [{
          "type": "CONNECTED_SERVICES_ACCOUNT", "code": "AUTHENTICATION_FAILED", "state": "ERROR",
          "description": "The connected-services account's credentials changed.",
          "suggestedUserMessage": "Please reconnect your car to keep your mileage up to date.",
          "resolution": {"type": "REAUTHENTICATE"}}]},
      "meta": {"version": "4.0", "deliveryId": "d-err", "mode": "LIVE"}})
# truck-03: quiet for six days.
km = 201_400.0
for i in range(25, 5, -1):
    km += 310
    state("sc-c04e77aa", now - i * D, km, [{"code": "internalcombustionengine-fuellevel", "body": {"value": 61, "unit": "percent"}}])
# car-21: asleep now and then (a condition that clears itself).
for i in range(10, 0, -1):
    state("sc-91aa0f3d", now - i * D + 3 * H, 33_000 + 42 * (10 - i))
post({"eventId": "err-car-21", "eventType": "VEHICLE_ERROR",
      "data": {"vehicle": {"id": "sc-91aa0f3d"}, "errors": [{
          "type": "VEHICLE_STATE", "code": "ASLEEP", "state": "ERROR",
          "description": "The vehicle is asleep.", "suggestedUserMessage": "Wake your car up.",
          "resolution": {"type": "RETRY_LATER"}}]},
      "meta": {"version": "4.0", "deliveryId": "d-err2", "mode": "LIVE"}})
# A car nobody registered, and a signed body that is not JSON (kept as `malformed`, answered 400).
state("sc-unregistered-5", now - H, 777.0)
raw = b"not json at all"
req = urllib.request.Request(url, raw, {"SC-Signature": hmac.new(token, raw, hashlib.sha256).hexdigest()})
try:
    urllib.request.urlopen(req, timeout=20)
    sys.exit("screenshots: a body that is not JSON was answered 2xx")
except urllib.error.HTTPError as e:
    assert e.code == 400, e.code
print(f"screenshots: {sent + 1} deliveries posted", file=sys.stderr)
PY

python3 - "$tmp/meterhook.db" <<'PY'
import datetime, random, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
rng = random.Random(7)
now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
rows = []
for h in range(1, 24):
    hour = now - datetime.timedelta(hours=h)
    busy = 1.0 if 6 <= hour.hour <= 20 else 0.3
    for outcome, mean in [("created", 40), ("duplicate", 6), ("no_odometer", 5), ("out_of_sequence", 1),
                          ("implausible_jump", 0.4), ("unknown_vehicle", 0.6), ("invalid_reading", 0.3)]:
        for n in range(int(rng.random() * 2 * mean * busy + 0.5)):
            at = hour - datetime.timedelta(seconds=rng.randrange(3600))
            rows.append((f"history-{h}-{outcome}-{n}", "VEHICLE_STATE", "{}", at.strftime("%Y-%m-%d %H:%M:%S.%f"),
                         at.strftime("%Y-%m-%d %H:%M:%S.%f"), outcome))
db.executemany("INSERT INTO smartcar_webhook_events (event_id, event_type, payload, received_at, processed, "
               "processed_at, outcome, attempts) VALUES (?, ?, ?, ?, TRUE, ?, ?, 0)", rows)
db.commit()
print(f"screenshots: {len(rows)} earlier deliveries written", file=sys.stderr)
PY

# car-21's latest reading, a little further on, as the CLI sends it.
"$bin" send-test-event --url "$base/api/smartcar/webhook" --vehicle sc-91aa0f3d --odometer 33390 >/dev/null

shoot() { # NAME PATH HEIGHT
  local name=$1 path=$2 height=$3 file="$out/$1.png"
  local status
  status=$(curl -s -o /dev/null -w '%{http_code}' -u "ops:$METERHOOK_UI_PASSWORD" "$base$path")
  [ "$status" = 200 ] || { echo "screenshots: $path answered $status" >&2; exit 1; }
  rm -f "$file"
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$(mktemp -d "$tmp/chromium.XXXXXX")" \
    --screenshot="$file" --window-size="1280,$height" \
    "http://ops:$METERHOOK_UI_PASSWORD@127.0.0.1:$port$path" >"$tmp/chromium-$name.log" 2>&1 || true
  if [ ! -s "$file" ] || [ "$(head -c 8 "$file" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
    echo "screenshots: no screenshot of $path" >&2
    cat "$tmp/chromium-$name.log" >&2
    exit 1
  fi
  echo "screenshots: $file ($(wc -c <"$file") bytes)"
}

shoot overview /ui/ 1000
shoot vehicle /ui/vehicles/van-07 1500
shoot events /ui/events 900
shoot events-filtered "/ui/events?outcome=implausible_jump" 600
if [ "$readme" = 1 ]; then
  mkdir -p "$root/docs/images"
  cp "$out/overview.png" "$root/docs/images/overview.png"
  echo "screenshots: docs/images/overview.png"
fi
