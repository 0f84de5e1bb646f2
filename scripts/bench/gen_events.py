#!/usr/bin/env python3
"""Pre-signed benchmark events for wrk: one request per line, "<signature> <body>".

The mix, in a fixed pseudo-random order: 90 % new odometer readings (rising per vehicle),
5 % redeliveries (an earlier eventId again: answered 2xx, not processed again) and 5 %
duplicates within the hour (a new eventId, the same value ten minutes later: skipped).
Prints the expected counts as JSON on stderr.

Scenarios (--scenario):
- sparse (default): v4 readings half an hour apart per vehicle, 1-21 km on: plausible.
- dense: v4 readings 100 ms apart per vehicle, 1-3 m on (plausible, many per second).
- refused: v4 readings half an hour apart that jump 500-600 km: every one an implausible jump,
  written as a void entry.
- seed: the seed's payload shape (vehicleId, data.odometer {distance, unit}; no observation time,
  so the time of receipt dates it), rising 1-21 km: run the server with METERHOOK_MAX_SPEED_KMH=0,
  as readings then arrive many per vehicle per second.
"""
import argparse, hashlib, hmac, json, random, sys, time, uuid

p = argparse.ArgumentParser()
p.add_argument("--count", type=int, required=True)
p.add_argument("--vehicles", type=int, default=100)
p.add_argument("--token", required=True)
p.add_argument("--out", required=True)
p.add_argument("--prefix", default="bench", help="kept for the callers; ids are random UUIDs")
p.add_argument("--scenario", choices=["sparse", "dense", "refused", "seed"], default="sparse")
p.add_argument("--run", type=int, default=0,
               help="K-th file for the same database: its readings start after those of runs 0..K-1")
a = p.parse_args()

rng = random.Random(42 + a.run)
key = a.token.encode()
# Readings must stay in the past however many there are: one dated after its receipt (by more
# than the server's allowed clock skew) is re-dated by receipt, and readings re-dated a few
# milliseconds apart are implausible jumps. They must also stay after 1970 (times are epoch
# milliseconds; 0 and below mean "no time"). So up to 16 files (--run) of this size fit between
# 2000 and now: a vehicle's readings are half an hour apart when they fit (sparse, refused), else
# closer, with distances scaled to keep the same speeds.
per_vehicle = a.count // max(a.vehicles, 1) * 2 + 1_000
y2000_ms = 946_684_800_000
window_ms = (int(time.time() * 1000) - y2000_ms) // 16
step_ms = min(1_800_000, window_ms // per_vehicle)
scale = step_ms / 1_800_000
t0 = y2000_ms + a.run * window_ms
km0 = 10_000.0 + a.run * (a.count + 10) * 21.0
state = {}  # vehicle -> (km, ms)
sent_new = []  # (event_id, body) of new readings, for redeliveries
expected = {"new": 0, "redelivery": 0, "duplicate": 0}
with open(a.out, "w") as out:
    for i in range(a.count):
        v = rng.randrange(a.vehicles)
        vid = f"bench-vehicle-{v:03d}"
        roll = rng.random()
        if roll < 0.05 and sent_new:
            body = sent_new[rng.randrange(len(sent_new))]
            expected["redelivery"] += 1
        else:
            km, ms = state.get(v, (km0 + v, t0))
            if roll < 0.10 and v in state:
                ms += 600_000  # same value ten minutes later: a duplicate
                expected["duplicate"] += 1
            elif a.scenario == "dense":
                km += 0.001 + rng.random() * 0.002
                ms += 100  # a tenth of a second later: up to 108 km/h
                expected["new"] += 1
            elif a.scenario == "refused":
                km += (500.0 + rng.random() * 100) * scale
                ms += step_ms  # 1,000-1,200 km/h: an implausible jump every time
                expected["new"] += 1
            else:
                km += (1.0 + rng.random() * 20) * scale
                ms += step_ms  # half an hour later (or closer, scaled): 2-42 km/h, plausible
                expected["new"] += 1
            state[v] = (km, ms)
            if a.scenario == "seed":
                body = json.dumps({
                    "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "eventType": "VEHICLE_STATE",
                    "vehicleId": vid,
                    "data": {"odometer": {"distance": round(km, 3), "unit": "kilometers"}},
                }, separators=(",", ":"))
                if len(sent_new) < 100_000:
                    sent_new.append(body)
                sig = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
                out.write(f"{sig} {body}\n")
                continue
            body = json.dumps({
                # Random UUIDs, like Smartcar's v4 eventIds: each lands on its own leaf of the
                # event_id index, as real traffic does (sequential ids would all append).
                "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "eventType": "VEHICLE_STATE",
                "data": {"vehicle": {"id": vid}, "signals": [{
                    "code": "odometer-traveleddistance", "name": "TraveledDistance", "group": "Odometer",
                    "body": {"value": round(km, 3), "unit": "km"},
                    "meta": {"oemUpdatedAt": ms, "retrievedAt": ms + 500},
                    "status": {"value": "SUCCESS"}}]},
                "meta": {"version": "4.0", "deliveryId": f"d-{i}", "deliveredAt": ms + 900, "mode": "LIVE"},
            }, separators=(",", ":"))
            if len(sent_new) < 100_000:
                sent_new.append(body)
        sig = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
        out.write(f"{sig} {body}\n")
json.dump(expected, sys.stderr)
sys.stderr.write("\n")
