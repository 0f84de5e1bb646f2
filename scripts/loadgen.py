#!/usr/bin/env python3
"""Load generator for meterhook's webhook endpoint (Python 3 standard library only).

Sends unique, correctly signed Smartcar v4 VEHICLE_STATE odometer events to a meterhook on this
machine, from several threads, and records in --acked-file the id of every event the server
answered 2xx -- one line per id, flushed at once, so the file is a complete record of what the
server acknowledged even if the server is killed (scripts/crash-test.sh, scripts/outage-test.sh
compare it with what the database holds).

    scripts/loadgen.py --url http://127.0.0.1:3000/api/smartcar/webhook --token "$TOKEN" \\
        --vehicles sc-1,sc-2 --threads 4 --seconds 10 --acked-file /tmp/acked.txt

Readings: vehicle number i (0-based, in --vehicles order) reads 10000 + 1000*i km at sequence 0,
and each further sequence number adds 10 m and 1 s of observation time (36 km/h), so every event
is a new, plausible reading whatever order the threads deliver them in. --start-seq continues a
series from an earlier run (use a number above every sequence number that run used).

A refused, reset or timed-out connection, or a 5xx answer, is retried with the same event (a
redelivery, as Smartcar does) after a short pause on a new connection -- the server may be being
killed and restarted. A 4xx answer is not retried (the event is counted as rejected). The run is
bounded: it stops after --count events or after --seconds, whichever comes first (at least one
must be given); SIGINT/SIGTERM stop it early after the requests in flight. Only loopback targets
are accepted.

At the end it prints `sent`, `acknowledged`, `errors` (failed attempts), `rejected`, `gave_up`
(events never acknowledged), `attempts`, `seconds` and the latency of the 2xx answers
(`latency_ms_p50`, `_p99`, `_max`), one `name: value` per line, and exits 0 (2 on bad
arguments).
"""

import argparse
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse

# 2025-01-01T00:00:00Z: observation time of sequence number 0.
BASE_TIME_MS = 1_735_689_600_000
STEP_MS = 1_000
STEP_KM = 0.01


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/api/smartcar/webhook")
    p.add_argument("--token", required=True, help="the management token the server verifies with")
    p.add_argument("--vehicles", required=True, help="comma-separated Smartcar vehicle ids")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--count", type=int, help="send this many events (all threads together)")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.add_argument("--acked-file", required=True, help="append the id of every 2xx-answered event")
    p.add_argument("--id-prefix", help="event id prefix (default: random, unique per run)")
    p.add_argument("--start-seq", type=int, default=0, help="first sequence number per vehicle")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    p.add_argument("--max-attempts", type=int, default=300,
                   help="attempts per event before giving up on it (pauses of 50-150 ms between)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    if args.count is None and args.seconds is None:
        p.error("give --count or --seconds (or both)")
    if args.threads < 1 or (args.count is not None and args.count < 0):
        p.error("--threads must be at least 1 and --count not negative")
    if args.seconds is not None and args.seconds <= 0:
        p.error("--seconds must be positive")
    url = urllib.parse.urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        p.error("--url must be http://HOST:PORT/PATH")
    try:
        host_ip = ipaddress.ip_address(socket.gethostbyname(url.hostname))
    except (OSError, ValueError):
        p.error(f"cannot resolve {url.hostname}")
    if not host_ip.is_loopback:
        p.error("--url must point at this machine (loopback address)")
    args.host = url.hostname
    args.port = url.port or 80
    args.path = url.path or "/"
    if url.query:
        args.path += "?" + url.query
    args.vehicle_list = [v.strip() for v in args.vehicles.split(",") if v.strip()]
    if not args.vehicle_list:
        p.error("--vehicles is empty")
    if args.id_prefix is None:
        args.id_prefix = "lg-" + os.urandom(6).hex()
    return args


class Run:
    """State shared by the sender threads."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.ack_lock = threading.Lock()
        self.stop = threading.Event()
        self.deadline = time.monotonic() + args.seconds if args.seconds is not None else None
        self.next_index = 0
        self.next_seq = {v: args.start_seq for v in args.vehicle_list}
        self.sent = 0
        self.acked = 0
        self.errors = 0
        self.rejected = 0
        self.gave_up = 0
        self.attempts = 0
        self.latencies = []  # seconds, of the 2xx answers
        self.acked_file = open(args.acked_file, "a", encoding="utf-8")

    def expired(self):
        return self.stop.is_set() or (
            self.deadline is not None and time.monotonic() >= self.deadline)

    def next_event(self):
        """The next (event id, body bytes), or None when the run is over."""
        with self.lock:
            if self.expired():
                return None
            if self.args.count is not None and self.next_index >= self.args.count:
                return None
            index = self.next_index
            self.next_index += 1
            vehicle_no = index % len(self.args.vehicle_list)
            vehicle = self.args.vehicle_list[vehicle_no]
            seq = self.next_seq[vehicle]
            self.next_seq[vehicle] = seq + 1
            self.sent += 1
        event_id = f"{self.args.id_prefix}-{vehicle}-{seq}"
        observed = BASE_TIME_MS + seq * STEP_MS
        km = round(10_000 + 1_000 * vehicle_no + seq * STEP_KM, 3)
        now_ms = int(time.time() * 1000)
        body = {
            "eventId": event_id,
            "eventType": "VEHICLE_STATE",
            "data": {
                "user": {"id": "loadgen"},
                "vehicle": {"id": vehicle},
                "signals": [{
                    "code": "odometer-traveleddistance",
                    "name": "TraveledDistance",
                    "group": "Odometer",
                    "body": {"value": km, "unit": "km"},
                    "meta": {"oemUpdatedAt": observed, "retrievedAt": observed + 500},
                    "status": {"value": "SUCCESS"},
                }],
            },
            "triggers": [{"type": "SIGNAL_UPDATED",
                          "signal": {"name": "TraveledDistance",
                                     "code": "odometer-traveleddistance",
                                     "group": "Odometer"}}],
            "meta": {"version": "4.0", "deliveryId": os.urandom(8).hex(),
                     "deliveredAt": now_ms, "mode": "LIVE", "webhookId": "loadgen",
                     "signalCount": 1},
        }
        return event_id, json.dumps(body, separators=(",", ":")).encode()

    def record_ack(self, event_id, latency):
        with self.ack_lock:
            self.acked_file.write(event_id + "\n")
            self.acked_file.flush()
            self.acked += 1
            self.latencies.append(latency)

    def count(self, field):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)


def sender(run):
    args = run.args
    key = args.token.encode()
    conn = None
    while True:
        item = run.next_event()
        if item is None:
            break
        event_id, body = item
        headers = {
            "Content-Type": "application/json",
            "SC-Signature": hmac.new(key, body, hashlib.sha256).hexdigest(),
        }
        done = False
        for attempt in range(args.max_attempts):
            # An event already sent is retried even past the deadline only while the run is not
            # stopped or expired: it is then simply not acknowledged (counted as gave_up).
            if attempt > 0 and run.expired():
                break
            run.count("attempts")
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
                sent_at = time.monotonic()
                conn.request("POST", args.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                # Refused, reset, timed out, or the server vanished mid-answer.
                if conn is not None:
                    conn.close()
                    conn = None
                run.count("errors")
                time.sleep(random.uniform(0.05, 0.15))
                continue
            if 200 <= status < 300:
                run.record_ack(event_id, time.monotonic() - sent_at)
                done = True
                break
            run.count("errors")
            if 400 <= status < 500:
                run.count("rejected")
                if not args.quiet:
                    print(f"loadgen: {event_id}: HTTP {status}; not retried", file=sys.stderr)
                done = True  # not acknowledged, but not given up on either: refused
                break
            time.sleep(random.uniform(0.05, 0.15))
        if not done:
            run.count("gave_up")
    if conn is not None:
        conn.close()


def main(argv):
    args = parse_args(argv)
    run = Run(args)

    def stop(_signum, _frame):
        run.stop.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    threads = [threading.Thread(target=sender, args=(run,), daemon=True)
               for _ in range(args.threads)]
    started = time.monotonic()
    for t in threads:
        t.start()
    last_report = started
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=0.2)
        now = time.monotonic()
        if not args.quiet and now - last_report >= 5:
            last_report = now
            print(f"loadgen: {now - started:.0f}s sent {run.sent} acknowledged {run.acked} "
                  f"errors {run.errors}", file=sys.stderr)
    elapsed = time.monotonic() - started
    run.acked_file.close()
    print(f"sent: {run.sent}")
    print(f"acknowledged: {run.acked}")
    print(f"errors: {run.errors}")
    print(f"rejected: {run.rejected}")
    print(f"gave_up: {run.gave_up}")
    print(f"attempts: {run.attempts}")
    print(f"seconds: {elapsed:.1f}")
    if run.latencies:
        lat = sorted(run.latencies)
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
        print(f"latency_ms_p50: {pick(0.50):.1f}")
        print(f"latency_ms_p99: {pick(0.99):.1f}")
        print(f"latency_ms_max: {lat[-1] * 1000:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
