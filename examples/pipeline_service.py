#!/usr/bin/env python3
"""A stand-alone demo service for Trama's data-pipeline example: extract, transform, load, publish.

Standard library only (no Django). Run it beside `make run`:

    python3 examples/pipeline_service.py         # listens on 127.0.0.1:8003
    python3 examples/pipeline_service.py 9003    # another port (or PIPELINE_SERVICE_PORT=9003)

The transformer is flaky on purpose: it answers 503 to the first PIPELINE_SERVICE_FLAKY
(default 2) calls for each batch, the way a service that is warming up or overloaded does,
so Trama's retries with back-off are visible.

Endpoints (every request is logged on one line to stdout):

    POST   /extract/batches            -> 201 {"batch": "batch-<n>", "rows": <rows>}
    DELETE /extract/batches/<id>       -> 200 {"discarded": "<id>"}
    POST   /transform/jobs             -> 503 for the first N calls of a batch, then 201 {"job": "job-<n>"}
    DELETE /transform/jobs/<id>        -> 200 {"deleted": "<id>"}
    POST   /warehouse/loads            -> 201 {"load": "load-<n>"}, or 422 when the body has a truthy
                                          "fail" (the table's schema does not match: not worth retrying)
    DELETE /warehouse/loads/<id>       -> 200 {"rolled_back": "<id>"}
    POST   /catalog/publications       -> 201 {"publication": "pub-<n>"}
"""

import os
import threading
from collections import Counter

from demo_http import JsonHandler, next_id, serve, truthy

FLAKY_CALLS = int(os.environ.get("PIPELINE_SERVICE_FLAKY", "2"))
_calls_per_batch: Counter = Counter()
_lock = threading.Lock()


def extract(handler, body, groups):
    return 201, {"batch": next_id("batch"), "source": body.get("source"), "rows": body.get("rows", 0)}


def transform(handler, body, groups):
    """Fail the first FLAKY_CALLS calls for each batch with 503: a transient failure Trama retries."""
    batch = str(body.get("batch"))
    with _lock:
        _calls_per_batch[batch] += 1
        call = _calls_per_batch[batch]
    if call <= FLAKY_CALLS:
        return 503, {"error": "transformer overloaded, try again", "call": call}
    return 201, {"job": next_id("job"), "batch": batch, "calls": call}


def load(handler, body, groups):
    if truthy(body.get("fail")):
        return 422, {"error": f"schema of table {body.get('table')!r} does not match the batch"}
    return 201, {"load": next_id("load"), "table": body.get("table")}


class Handler(JsonHandler):
    server_version = "pipeline-service/1.0"
    routes = {
        ("POST", r"/extract/batches"): extract,
        ("DELETE", r"/extract/batches/([\w-]+)"): lambda h, b, g: (200, {"discarded": g[0]}),
        ("POST", r"/transform/jobs"): transform,
        ("DELETE", r"/transform/jobs/([\w-]+)"): lambda h, b, g: (200, {"deleted": g[0]}),
        ("POST", r"/warehouse/loads"): load,
        ("DELETE", r"/warehouse/loads/([\w-]+)"): lambda h, b, g: (200, {"rolled_back": g[0]}),
        ("POST", r"/catalog/publications"): lambda h, b, g: (
            201,
            {"publication": next_id("pub"), "table": b.get("table")},
        ),
    }


if __name__ == "__main__":
    serve(Handler, "pipeline service", 8003, "PIPELINE_SERVICE_PORT")
