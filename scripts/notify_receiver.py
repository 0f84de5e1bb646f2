#!/usr/bin/env python3
"""A receiver of meterhook's notifications that verifies each with the official Standard Webhooks
library (`pip install standardwebhooks`), as an app would.

    notify_receiver.py --secret whsec_... --port-file PATH --log PATH
                       [--down-until UNIX_SECONDS] [--flaky-until UNIX_SECONDS]

Listens on 127.0.0.1 (a free port, written to --port-file). Each POST is verified with
`standardwebhooks.Webhook(secret).verify(body, headers)`; a verified message is answered 204 and
logged as one JSON line {"id", "type", "verified": true, "status"}; one that does not verify is
answered 400 and logged with "verified": false. Until --down-until, every request is answered by
closing the connection (logged with "verified": null, "status": 0); until --flaky-until, half
the verified messages are answered 500, at random.
"""
import argparse
import json
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--down-until", type=float, default=0)
    parser.add_argument("--flaky-until", type=float, default=0)
    args = parser.parse_args()
    webhook = Webhook(args.secret)
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            now = time.time()
            if now < args.down_until:
                # As if nothing listened: the connection closes without an answer.
                log.write(json.dumps({"id": self.headers.get("webhook-id"), "type": None,
                                      "verified": None, "status": 0}) + "\n")
                self.close_connection = True
                return
            try:
                message = webhook.verify(body, dict(self.headers.items()))
                verified = True
            except WebhookVerificationError as e:
                message = {"type": None, "error": str(e)}
                verified = False
            status = 204 if verified else 400
            if verified and now < args.flaky_until and random.random() < 0.5:
                status = 500
            log.write(json.dumps({
                "id": self.headers.get("webhook-id"),
                "type": message.get("type"),
                "verified": verified,
                "status": status,
            }) + "\n")
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file, "w") as f:
        f.write(str(server.server_address[1]))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
