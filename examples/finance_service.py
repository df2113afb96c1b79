#!/usr/bin/env python3
"""A stand-alone demo service for Trama's payment-authorization example: accounts, risk, settlement, ledger.

Standard library only (no Django). Run it beside `make run`:

    python3 examples/finance_service.py          # listens on 127.0.0.1:8002
    python3 examples/finance_service.py 9002     # another port (or FINANCE_SERVICE_PORT=9002)

Endpoints (every request is logged on one line to stdout):

    POST   /accounts/holds                  -> 201 {"hold": "hold-<n>"}        (funds reserved)
    DELETE /accounts/holds/<id>             -> 200 {"released": "<id>"}
    POST   /risk/authorizations             -> 202 {"authorization": "auth-<n>"}; ~1 s later POSTs
                                               {"status": "succeeded", "output": {"decision": "approved" |
                                               "declined", "authorization": ..., "reason": ...}} to the
                                               X-Trama-Callback-Url request header. Amounts above
                                               FINANCE_SERVICE_LIMIT (default 5000) are declined.
    DELETE /risk/authorizations/<id>        -> 200 {"voided": "<id>"}
    POST   /settlements                     -> 201 {"settlement": "stl-<n>"}
    DELETE /settlements/<id>                -> 200 {"reversed": "<id>"}
    POST   /ledger/entries                  -> 201 {"entry": "le-<n>"}, or 422 when the body has a truthy
                                               "fail" (a closed accounting period: not worth retrying)
    POST   /ledger/entries/<id>/reversal    -> 201 {"reversal": "rev-<n>", "entry": "<id>"}
    POST   /notifications                   -> 201 {"notification": "ntf-<n>"}
"""

import os

from demo_http import JsonHandler, in_background, next_id, post_json, serve, truthy

LIMIT = float(os.environ.get("FINANCE_SERVICE_LIMIT", "5000"))
CALLBACK_DELAY_S = float(os.environ.get("FINANCE_SERVICE_CALLBACK_DELAY", "1.0"))


def hold(handler, body, groups):
    return 201, {"hold": next_id("hold"), "account": body.get("account"), "amount": body.get("amount")}


def authorize(handler, body, groups):
    """Accept now, decide later: the decision arrives as a callback, like a real card network or bank."""
    callback_url = handler.headers.get("X-Trama-Callback-Url")
    if not callback_url:
        return 400, {"error": "missing X-Trama-Callback-Url header"}
    authorization = next_id("auth")
    result = {"status": "succeeded", "output": _decision(body, authorization)}
    in_background(post_json, callback_url, result, CALLBACK_DELAY_S)
    return 202, {"authorization": authorization}


def _decision(body: dict, authorization: str) -> dict:
    try:
        amount = float(body.get("amount"))
    except (TypeError, ValueError):
        return {"decision": "declined", "authorization": authorization, "reason": "amount is not a number"}
    if amount > LIMIT:
        return {"decision": "declined", "authorization": authorization, "reason": f"amount above limit {LIMIT:g}"}
    return {"decision": "approved", "authorization": authorization, "reason": None}


def settle(handler, body, groups):
    return 201, {"settlement": next_id("stl"), "authorization": body.get("authorization")}


def ledger_entry(handler, body, groups):
    if truthy(body.get("fail")):
        return 422, {"error": "accounting period is closed"}
    return 201, {"entry": next_id("le"), "settlement": body.get("settlement")}


class Handler(JsonHandler):
    server_version = "finance-service/1.0"
    routes = {
        ("POST", r"/accounts/holds"): hold,
        ("DELETE", r"/accounts/holds/([\w-]+)"): lambda h, b, g: (200, {"released": g[0]}),
        ("POST", r"/risk/authorizations"): authorize,
        ("DELETE", r"/risk/authorizations/([\w-]+)"): lambda h, b, g: (200, {"voided": g[0]}),
        ("POST", r"/settlements"): settle,
        ("DELETE", r"/settlements/([\w-]+)"): lambda h, b, g: (200, {"reversed": g[0]}),
        ("POST", r"/ledger/entries"): ledger_entry,
        ("POST", r"/ledger/entries/([\w-]+)/reversal"): lambda h, b, g: (
            201,
            {"reversal": next_id("rev"), "entry": g[0]},
        ),
        ("POST", r"/notifications"): lambda h, b, g: (201, {"notification": next_id("ntf"), "kind": b.get("kind")}),
    }


if __name__ == "__main__":
    serve(Handler, "finance service", 8002, "FINANCE_SERVICE_PORT")
