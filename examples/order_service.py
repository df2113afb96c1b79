#!/usr/bin/env python3
"""A stand-alone demo service for Trama's order examples: inventory, payments and shipping.

Standard library only (no Django). Run it beside `make run`:

    python3 examples/order_service.py            # listens on 127.0.0.1:8001
    python3 examples/order_service.py 9001       # another port (or ORDER_SERVICE_PORT=9001)

Endpoints (every request is logged on one line to stdout):

    POST   /inventory/reservations        -> 201 {"id": "res-<n>"}
    DELETE /inventory/reservations/<id>   -> 200 {"released": "<id>"}
    POST   /payments/card                 -> 200 {"charge": "ch-<n>"}
    POST   /payments/pix                  -> 202 {"pix": "px-<n>"}; ~1 s later POSTs
                                             {"status": "succeeded", "output": {"paid": true}}
                                             to the X-Trama-Callback-Url request header
    DELETE /payments/charges/<id>         -> 200 {"refunded": "<id>"}
    POST   /shipping/shipments            -> 201 {"tracking": "TRK-<n>"}, or 500 when the body has
                                             a truthy "fail" (to show compensation)
"""

import itertools
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = os.environ.get("ORDER_SERVICE_HOST", "127.0.0.1")
CALLBACK_DELAY_S = float(os.environ.get("ORDER_SERVICE_CALLBACK_DELAY", "1.0"))

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def next_id(prefix: str) -> str:
    with _counter_lock:
        return f"{prefix}-{next(_counter)}"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def send_callback(url: str, body: dict) -> None:
    """Tell Trama the async payment finished (runs in a background thread)."""
    time.sleep(CALLBACK_DELAY_S)
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            log(f"callback -> {url} {answer.status} {answer.read().decode(errors='replace')}")
    except urllib.error.HTTPError as exc:
        log(f"callback -> {url} {exc.code} {exc.read().decode(errors='replace')}")
    except OSError as exc:
        log(f"callback -> {url} failed: {exc}")


class Handler(BaseHTTPRequestHandler):
    server_version = "order-service/1.0"

    def log_message(self, format, *args):
        pass  # one line per request is written by _answer instead

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _answer(self, status: int, payload: dict, body: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        key = self.headers.get("Idempotency-Key", "-")
        sent = f" {json.dumps(body)}" if body else ""
        log(f"{self.command} {self.path}{sent} -> {status} {json.dumps(payload)} (Idempotency-Key: {key})")

    def do_POST(self):
        body = self._body()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/inventory/reservations":
            return self._answer(201, {"id": next_id("res")}, body)
        if path == "/payments/card":
            return self._answer(200, {"charge": next_id("ch")}, body)
        if path == "/payments/pix":
            callback_url = self.headers.get("X-Trama-Callback-Url")
            if not callback_url:
                return self._answer(400, {"error": "missing X-Trama-Callback-Url header"}, body)
            self._answer(202, {"pix": next_id("px")}, body)
            result = {"status": "succeeded", "output": {"paid": True}}
            threading.Thread(target=send_callback, args=(callback_url, result), daemon=True).start()
            return None
        if path == "/shipping/shipments":
            if body.get("fail") in (True, "true", "1", 1):
                return self._answer(500, {"error": "the carrier refused the shipment"}, body)
            return self._answer(201, {"tracking": next_id("TRK")}, body)
        return self._answer(404, {"error": f"no route POST {path}"}, body)

    def do_DELETE(self):
        body = self._body()
        path = self.path.split("?", 1)[0].rstrip("/")
        for prefix, key in (("/inventory/reservations/", "released"), ("/payments/charges/", "refunded")):
            if path.startswith(prefix) and len(path) > len(prefix):
                return self._answer(200, {key: path[len(prefix) :]}, body)
        return self._answer(404, {"error": f"no route DELETE {path}"}, body)

    def do_GET(self):
        return self._answer(404, {"error": f"no route GET {self.path}"})


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("ORDER_SERVICE_PORT", "8001"))
    server = ThreadingHTTPServer((HOST, port), Handler)
    server.daemon_threads = True
    # Ctrl-C and SIGTERM both stop it (even when started in the background, where SIGINT is ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log(f"order service listening on http://{HOST}:{port} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log("order service stopped")


if __name__ == "__main__":
    main()
