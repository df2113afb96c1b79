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

import os

from demo_http import JsonHandler, in_background, next_id, post_json, serve

CALLBACK_DELAY_S = float(os.environ.get("ORDER_SERVICE_CALLBACK_DELAY", "1.0"))


def pix(handler, body, groups):
    """Accept now, confirm later: the payment result arrives as a callback."""
    callback_url = handler.headers.get("X-Trama-Callback-Url")
    if not callback_url:
        return 400, {"error": "missing X-Trama-Callback-Url header"}
    result = {"status": "succeeded", "output": {"paid": True}}
    in_background(lambda: post_json(callback_url, result, CALLBACK_DELAY_S, abbreviate=False))
    return 202, {"pix": next_id("px")}


def ship(handler, body, groups):
    if body.get("fail") in (True, "true", "1", 1):
        return 500, {"error": "the carrier refused the shipment"}
    return 201, {"tracking": next_id("TRK")}


class Handler(JsonHandler):
    server_version = "order-service/1.0"
    routes = {
        ("POST", r"/inventory/reservations"): lambda h, b, g: (201, {"id": next_id("res")}),
        ("DELETE", r"/inventory/reservations/(.+)"): lambda h, b, g: (200, {"released": g[0]}),
        ("POST", r"/payments/card"): lambda h, b, g: (200, {"charge": next_id("ch")}),
        ("POST", r"/payments/pix"): pix,
        ("DELETE", r"/payments/charges/(.+)"): lambda h, b, g: (200, {"refunded": g[0]}),
        ("POST", r"/shipping/shipments"): ship,
    }


if __name__ == "__main__":
    serve(Handler, "order service", 8001, "ORDER_SERVICE_PORT")
