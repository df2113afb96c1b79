"""definitions.validation: every problem reported with its JSON path; valid input normalized."""

import copy

import pytest

from definitions.validation import validate_definition

DAY = 86_400


def req(url: str = "http://svc.local/x", **extra) -> dict:
    return {"method": "POST", "url": url, **extra}


def task(**extra) -> dict:
    return {"type": "task", "request": req(), **extra}


def graph(nodes: dict | None = None, **top) -> dict:
    nodes = nodes or {"a": task()}
    return {"name": "g", "kind": "graph", "start": next(iter(nodes)), "nodes": nodes, **top}


def saga(*steps, **top) -> dict:
    steps = list(steps) or [{"id": "a", "request": req()}]
    return {"name": "s", "kind": "saga", "steps": steps, **top}


def switch(cases=None, default="b", **extra) -> dict:
    cases = cases if cases is not None else [{"when": {"==": [{"var": "payload.x"}, 1]}, "next": "b"}]
    return {"type": "switch", "cases": cases, "default": default, **extra}


def with_node(node: dict, **others) -> dict:
    """A graph starting at node 'a' = ``node``, with 'b' and 'c' as plain ends."""
    return graph({"a": node, "b": task(), "c": task(), **others})


def sleep(**fields) -> dict:
    return {"type": "sleep", **fields}


def async_task(**extra) -> dict:
    return {"type": "async_task", "request": req(), **extra}


def request_with(**fields) -> dict:
    return graph({"a": task(request=req(**fields))})


def retry_with(**fields) -> dict:
    return graph({"a": task(retry=fields)})


ORDER_SAGA = {
    "name": "order-saga",
    "kind": "saga",
    "steps": [
        {
            "id": "reserve",
            "request": {
                "method": "POST",
                "url": "http://inventory/reservations",
                "body": {"orderId": "{{payload.orderId}}"},
            },
            "compensation": {
                "method": "DELETE",
                "url": "http://inventory/reservations/{{nodes.reserve.response.body.id}}",
            },
            "retry": {"max_attempts": 3, "backoff_s": 0.5, "multiplier": 2, "max_backoff_s": 30},
        },
        {"id": "charge", "request": {"method": "POST", "url": "http://payments/charges"}},
    ],
}

CHECKOUT_GRAPH = {
    "name": "checkout",
    "kind": "graph",
    "start": "reserve",
    "nodes": {
        "reserve": {
            "type": "task",
            "request": {"method": "POST", "url": "http://inventory/reservations", "body": "{{payload.items}}"},
            "compensation": {
                "method": "DELETE",
                "url": "http://inventory/reservations/{{nodes.reserve.response.body.id}}",
            },
            "next": "route",
        },
        "route": {
            "type": "switch",
            "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}],
            "default": "card",
        },
        "pix": {
            "type": "async_task",
            "request": {"method": "POST", "url": "http://pix/charges", "body": {"callback": "{{callback.url}}"}},
            "timeout_s": 900,
            "next": "ship",
        },
        "card": {"type": "task", "request": {"method": "POST", "url": "http://cards/charges"}, "next": "ship"},
        "cool": {"type": "sleep", "duration_s": 30, "next": "ship"},
        "ship": {"type": "task", "request": {"method": "POST", "url": "http://shipping/shipments"}},
    },
}


def checkout_graph_connected() -> dict:
    """SPEC 2.2 with 'cool' on the card path: as printed, nothing leads to 'cool' (see docs/definitions.md)."""
    source = copy.deepcopy(CHECKOUT_GRAPH)
    source["nodes"]["card"]["next"] = "cool"
    return source


INVALID = [
    # (case id, source, exact path, key word of the message)
    ("body-not-object", ["not", "a", "definition"], "", "object"),
    ("name-missing", {"kind": "saga", "steps": saga()["steps"]}, "name", "required"),
    ("name-blank", {**graph(), "name": "   "}, "name", "blank"),
    ("name-too-long", {**graph(), "name": "a" * 201}, "name", "200"),
    ("name-bad-characters", {**graph(), "name": "order saga!"}, "name", "must match"),
    ("name-not-string", {**graph(), "name": 7}, "name", "must be a string"),
    ("name-reserved", {**graph(), "name": "validate"}, "name", "reserved"),
    ("kind-unknown", {**graph(), "kind": "flowchart"}, "kind", "unknown kind"),
    ("top-level-unknown-field", graph(owner="me"), "owner", "unknown field"),
    ("graph-with-steps", graph(steps=[]), "steps", "unknown field"),
    ("saga-with-nodes", saga(nodes={}), "nodes", "unknown field"),
    ("nodes-not-object", {**graph(), "nodes": ["a"]}, "nodes", "must be an object"),
    ("start-missing", {k: v for k, v in graph().items() if k != "start"}, "start", "required"),
    ("start-unknown", {**graph(), "start": "nowhere"}, "start", "unknown node 'nowhere'"),
    ("node-type-unknown", graph({"a": {"type": "lambda"}}), "nodes.a.type", "unknown node type 'lambda'"),
    ("node-type-missing", graph({"a": {"request": req()}}), "nodes.a.type", "required"),
    ("node-not-object", graph({"a": "task"}), "nodes.a", "must be an object"),
    ("node-unknown-field", graph({"a": task(colour="red")}), "nodes.a.colour", "unknown field"),
    ("node-id-invalid", graph({"a": task(next="b.c"), "b.c": task()}), "nodes.b.c", "invalid node id"),
    ("node-id-reserved", graph({"a": task(next="fail"), "fail": {"type": "fail"}}), "nodes.fail", "reserved"),
    ("request-missing", graph({"a": {"type": "task"}}), "nodes.a.request", "required"),
    ("request-unknown-field", request_with(verb="GET"), "nodes.a.request.verb", "unknown field"),
    ("request-retry-only-on-compensation", request_with(retry={}), "nodes.a.request.retry", "unknown field"),
    ("request-method-bad", request_with(method="FETCH"), "nodes.a.request.method", "must be one of"),
    ("request-url-not-string", request_with(url=5), "nodes.a.request.url", "must be a string"),
    ("request-url-ftp", request_with(url="ftp://files/x"), "nodes.a.request.url", "http"),
    ("request-url-relative", request_with(url="/orders"), "nodes.a.request.url", "absolute"),
    ("request-url-no-host", request_with(url="http:///x"), "nodes.a.request.url", "absolute"),
    ("request-header-not-string", request_with(headers={"X-Count": 3}), "nodes.a.request.headers.X-Count", "string"),
    ("request-timeout-zero", request_with(timeout_s=0), "nodes.a.request.timeout_s", "greater than 0"),
    ("request-timeout-absurd", request_with(timeout_s=301), "nodes.a.request.timeout_s", "at most 300"),
    ("request-timeout-not-number", request_with(timeout_s="10"), "nodes.a.request.timeout_s", "must be a number"),
    ("success-status-not-list", request_with(success_status=200), "nodes.a.request.success_status", "list"),
    (
        "success-status-bad-item",
        request_with(success_status=[200, 700]),
        "nodes.a.request.success_status[1]",
        "100-599",
    ),
    ("template-unclosed", request_with(body={"id": "{{payload.id"}), "nodes.a.request.body.id", "unclosed"),
    (
        "template-unknown-root",
        request_with(url="http://svc/{{paylod.id}}"),
        "nodes.a.request.url",
        "unknown template root",
    ),
    (
        "template-unknown-node",
        request_with(headers={"X-Id": "{{nodes.ghost.response.body.id}}"}),
        "nodes.a.request.headers.X-Id",
        "unknown node 'ghost'",
    ),
    ("retry-unknown-field", retry_with(tries=3), "nodes.a.retry.tries", "unknown field"),
    ("retry-max-attempts-zero", retry_with(max_attempts=0), "nodes.a.retry.max_attempts", "between 1 and 100"),
    ("retry-max-attempts-absurd", retry_with(max_attempts=101), "nodes.a.retry.max_attempts", "between 1 and 100"),
    ("retry-max-attempts-fraction", retry_with(max_attempts=2.5), "nodes.a.retry.max_attempts", "integer"),
    ("retry-backoff-absurd", retry_with(backoff_s=3601), "nodes.a.retry.backoff_s", "at most 3600"),
    ("retry-backoff-negative", retry_with(backoff_s=-1), "nodes.a.retry.backoff_s", "at least 0"),
    ("retry-multiplier-below-one", retry_with(multiplier=0.5), "nodes.a.retry.multiplier", "at least 1"),
    ("retry-max-backoff-absurd", retry_with(max_backoff_s=86401), "nodes.a.retry.max_backoff_s", "at most 86400"),
    ("retry-on-not-list", retry_with(retry_on="5xx"), "nodes.a.retry.retry_on", "must be a list"),
    ("retry-on-bad-word", retry_with(retry_on=["5xx", "6xx"]), "nodes.a.retry.retry_on[1]", "retry_on items"),
    ("retry-on-bad-code", retry_with(retry_on=[99]), "nodes.a.retry.retry_on[0]", "100-599"),
    ("next-unknown", graph({"a": task(next="zzz")}), "nodes.a.next", "unknown node 'zzz'"),
    ("on-failure-unknown", graph({"a": task(on_failure="undo")}), "nodes.a.on_failure", "unknown node 'undo'"),
    (
        "on-timeout-unknown",
        graph({"a": async_task(on_timeout="late")}),
        "nodes.a.on_timeout",
        "unknown node 'late'",
    ),
    ("async-timeout-negative", graph({"a": async_task(timeout_s=-5)}), "nodes.a.timeout_s", "greater than 0"),
    ("async-timeout-absurd", graph({"a": async_task(timeout_s=31 * DAY)}), "nodes.a.timeout_s", "at most"),
    ("async-heartbeat-zero", graph({"a": async_task(heartbeat_s=0)}), "nodes.a.heartbeat_s", "greater than 0"),
    (
        "callback-unknown-field",
        graph({"a": async_task(callback={"done_when": True})}),
        "nodes.a.callback.done_when",
        "unknown field",
    ),
    (
        "callback-rule-unknown-operator",
        graph({"a": async_task(callback={"success_when": {"exec": ["rm"]}})}),
        "nodes.a.callback.success_when",
        "unknown operator 'exec'",
    ),
    (
        "case-next-unknown",
        graph({"route": switch([{"when": True, "next": "pixx"}], default="card"), "card": task()}),
        "nodes.route.cases[0].next",
        "unknown node 'pixx'",
    ),
    (
        "switch-default-missing",
        with_node({"type": "switch", "cases": switch()["cases"]}),
        "nodes.a.default",
        "required",
    ),
    ("switch-default-unknown", with_node(switch(default="nope")), "nodes.a.default", "unknown node 'nope'"),
    ("switch-cases-empty", with_node(switch(cases=[])), "nodes.a.cases", "non-empty"),
    ("switch-cases-missing", with_node({"type": "switch", "default": "b"}), "nodes.a.cases", "required"),
    ("switch-case-not-object", with_node(switch(cases=["b"])), "nodes.a.cases[0]", "must be an object"),
    ("switch-case-without-when", with_node(switch(cases=[{"next": "b"}])), "nodes.a.cases[0].when", "required"),
    ("switch-with-next", with_node(switch(next="c")), "nodes.a.next", "unknown field"),
    (
        "switch-unknown-operator",
        with_node(switch(cases=[{"when": {"and": [{"like": [1, 1]}]}, "next": "b"}])),
        "nodes.a.cases[0].when.and[0]",
        "unknown operator 'like'",
    ),
    (
        "switch-rule-reads-unknown-node",
        with_node(switch(cases=[{"when": {"==": [{"var": "nodes.ghost.response.status"}, 200]}, "next": "b"}])),
        "nodes.a.cases[0].when.==[0].var",
        "unknown node",
    ),
    ("sleep-negative", graph({"a": sleep(duration_s=-1)}), "nodes.a.duration_s", "at least 0"),
    ("sleep-absurd", graph({"a": sleep(duration_s=366 * DAY)}), "nodes.a.duration_s", "at most"),
    ("sleep-both", graph({"a": sleep(duration_s=1, until="2030-01-01T00:00:00Z")}), "nodes.a", "exactly one"),
    ("sleep-neither", graph({"a": sleep()}), "nodes.a", "exactly one"),
    ("sleep-until-no-timezone", graph({"a": sleep(until="2030-01-01T00:00:00")}), "nodes.a.until", "timezone"),
    ("sleep-until-garbage", graph({"a": sleep(until="next tuesday")}), "nodes.a.until", "ISO-8601"),
    ("sleep-until-bad-template", graph({"a": sleep(until="{{payload.when")}), "nodes.a.until", "unclosed"),
    ("succeed-output-bad-template", graph({"a": {"type": "succeed", "output": "{{}}"}}), "nodes.a.output", "empty"),
    (
        "parallel-branch-unknown",
        with_node({"type": "parallel", "branches": ["b", "x"]}),
        "nodes.a.branches[1]",
        "unknown node 'x'",
    ),
    ("parallel-branches-empty", with_node({"type": "parallel", "branches": []}), "nodes.a.branches", "non-empty"),
    ("unreachable-node", graph({"a": task(), "b": task()}), "nodes.b", "unreachable"),
    ("cycle-without-exit", graph({"a": task(next="b"), "b": task(next="a")}), "nodes.a", "cycle with no exit"),
    ("defaults-retry-bad", graph(defaults={"retry": {"max_attempts": 0}}), "defaults.retry.max_attempts", "between"),
    ("defaults-unknown-field", graph(defaults={"headerz": {}}), "defaults.headerz", "unknown field"),
    ("notify-bad-url", graph(notify={"failed": req(url="mailto:ops")}), "notify.failed.url", "http"),
    ("notify-unknown-event", graph(notify={"started": req()}), "notify.started", "unknown field"),
    ("saga-steps-empty", {**saga(), "steps": []}, "steps", "non-empty"),
    ("saga-steps-missing", {"name": "s", "kind": "saga"}, "steps", "required"),
    ("saga-step-not-object", saga({"id": "a", "request": req()}, "b"), "steps[1]", "must be an object"),
    ("saga-step-id-missing", saga({"request": req()}), "steps[0].id", "required"),
    (
        "saga-duplicate-step-id",
        saga({"id": "a", "request": req()}, {"id": "a", "request": req()}),
        "steps[1].id",
        "duplicate step id 'a'",
    ),
    (
        "saga-step-url-bad",
        saga({"id": "a", "request": req()}, {"id": "b", "request": req(url="svc/charges")}),
        "steps[1].request.url",
        "absolute",
    ),
    (
        "saga-step-type-switch",
        saga({"id": "a", "type": "switch", "request": req()}),
        "steps[0].type",
        "task or async_task",
    ),
    ("saga-step-next", saga({"id": "a", "request": req(), "next": "a"}), "steps[0].next", "unknown field"),
    ("saga-step-unknown-field", saga({"id": "a", "request": req(), "cases": []}), "steps[0].cases", "unknown field"),
    ("editor-not-object", graph(editor=[1]), "editor", "must be an object"),
    ("editor-unknown-field", graph(editor={"zoom": 2}), "editor.zoom", "unknown field"),
    ("editor-direction", graph(editor={"direction": "BT"}), "editor.direction", "TB (top-down) or LR"),
    ("editor-positions-list", graph(editor={"positions": [[1, 2]]}), "editor.positions", "must be an object"),
    ("editor-position-unknown", graph(editor={"positions": {"ghost": [1, 2]}}), "editor.positions.ghost", "no node"),
    ("editor-position-shape", graph(editor={"positions": {"a": {"x": 1, "y": 2}}}), "editor.positions.a", "[x, y]"),
    ("editor-position-text", graph(editor={"positions": {"a": ["1", 2]}}), "editor.positions.a", "two numbers"),
    ("editor-position-huge", graph(editor={"positions": {"a": [1e300, 2]}}), "editor.positions.a", "within"),
    ("editor-position-bool", graph(editor={"positions": {"a": [True, 2]}}), "editor.positions.a", "two numbers"),
    (
        "editor-position-saga-step",
        saga({"id": "a", "request": req()}, editor={"positions": {"b": [0, 0]}}),
        "editor.positions.b",
        "no node 'b'",
    ),
]


@pytest.mark.parametrize(("source", "path", "word"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID])
def test_rejects_with_exact_path(source, path, word):
    result = validate_definition(source)
    assert result.spec is None
    matching = [error for error in result.errors if error["path"] == path]
    assert matching, f"no error at {path!r}: {result.errors}"
    assert any(word in error["message"] for error in matching), matching


def test_refuses_deep_nesting_before_walking_it():
    body: list = []
    for _ in range(1000):
        body = [body]
    errors = validate_definition(request_with(body=body)).errors
    assert errors == [{"path": "", "message": "the definition nests objects and lists deeper than 64 levels"}]


def test_reports_every_problem_in_one_pass():
    source = graph({"a": task(next="b", request=req(method="FETCH", url="ftp://x")), "b": sleep(duration_s=-3)})
    source["extra"] = 1
    paths = {error["path"] for error in validate_definition(source).errors}
    assert paths == {"extra", "nodes.a.request.method", "nodes.a.request.url", "nodes.b.duration_s"}


def test_node_limit_is_one_error(settings):
    settings.TRAMA_MAX_NODES = 1000
    nodes = {f"n{i}": task(next=f"n{i + 1}") for i in range(10_000)}
    errors = validate_definition(graph(nodes)).errors
    assert errors == [{"path": "nodes", "message": errors[0]["message"]}]
    assert "node limit is 1000" in errors[0]["message"]


def test_node_limit_applies_to_saga_steps(settings):
    settings.TRAMA_MAX_NODES = 2
    steps = [{"id": f"s{i}", "request": req()} for i in range(3)]
    assert [e["path"] for e in validate_definition(saga(*steps)).errors] == ["steps"]


def test_spec_saga_example_normalizes_to_a_chain():
    spec = validate_definition(ORDER_SAGA).spec
    assert spec["start"] == "reserve"
    assert list(spec["nodes"]) == ["reserve", "charge"]
    reserve, charge = spec["nodes"]["reserve"], spec["nodes"]["charge"]
    assert (reserve["type"], reserve["next"]) == ("task", "charge")
    assert (charge["type"], charge["next"]) == ("task", None)
    assert reserve["retry"] == {
        "max_attempts": 3,
        "backoff_s": 0.5,
        "multiplier": 2.0,
        "max_backoff_s": 30.0,
        "retry_on": ["network", "timeout", 408, 429, "5xx"],
    }
    assert reserve["compensation"]["retry"] == reserve["retry"]  # a compensation falls back to its node's retry
    assert reserve["on_failure"] == "compensate"
    assert charge["compensation"] is None
    assert charge["retry"]["max_attempts"] == 1
    assert charge["request"] == {
        "method": "POST",
        "url": "http://payments/charges",
        "headers": {},
        "query": {},
        "timeout_s": 10.0,
        "success_status": None,
    }
    assert reserve["request"]["body"] == {"orderId": "{{payload.orderId}}"}


def test_spec_graph_example_normalizes():
    spec = validate_definition(checkout_graph_connected()).spec
    nodes = spec["nodes"]
    assert spec["start"] == "reserve" and set(nodes) == set(CHECKOUT_GRAPH["nodes"])
    assert nodes["route"] == {
        "type": "switch",
        "next": None,
        "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}],
        "default": "card",
    }
    pix = nodes["pix"]
    assert (pix["timeout_s"], pix["heartbeat_s"], pix["on_timeout"]) == (900.0, None, "compensate")
    assert pix["request"]["success_status"] == [202, 200]
    assert pix["callback"] == {"success_when": None, "failure_when": None}
    assert nodes["cool"] == {"type": "sleep", "next": "ship", "duration_s": 30.0, "until": None}
    assert nodes["ship"]["next"] is None


def test_spec_graph_example_as_printed_has_an_unreachable_node():
    errors = validate_definition(CHECKOUT_GRAPH).errors
    assert errors == [
        {"path": "nodes.cool", "message": "node 'cool' is unreachable: no path from start 'reserve' leads to it"}
    ]


def test_defaults_merge_into_every_node():
    source = saga(
        {"id": "a", "request": req(headers={"X-Trace": "a"}), "compensation": req(url="http://svc/undo")},
        {"id": "b", "type": "async_task", "request": req(timeout_s=5), "retry": {"max_attempts": 4}},
        defaults={
            "request": {
                "headers": {"Authorization": "Bearer {{secrets.TOKEN}}", "X-Trace": "default"},
                "timeout_s": 20,
            },
            "retry": {"max_attempts": 2, "backoff_s": 3},
            "timeout_s": 120,
        },
    )
    nodes = validate_definition(source).spec["nodes"]
    a, b = nodes["a"], nodes["b"]
    assert a["request"]["headers"] == {"Authorization": "Bearer {{secrets.TOKEN}}", "X-Trace": "a"}
    assert a["request"]["timeout_s"] == 20.0
    assert a["retry"]["max_attempts"] == 2 and a["retry"]["backoff_s"] == 3.0
    assert a["compensation"]["retry"] == a["retry"]
    assert a["compensation"]["headers"]["Authorization"] == "Bearer {{secrets.TOKEN}}"
    assert b["type"] == "async_task" and b["next"] is None
    assert b["request"]["timeout_s"] == 5.0
    assert b["retry"]["max_attempts"] == 4 and b["retry"]["backoff_s"] == 3.0  # field by field over the defaults
    assert b["timeout_s"] == 120.0


def test_graph_node_types_normalize_with_every_key():
    source = graph(
        {
            "a": {"type": "parallel", "branches": ["b", "c"], "next": "d"},
            "b": task(request=req(method="put", url="{{payload.url}}")),
            "c": sleep(until="{{payload.wake_at}}"),
            "d": switch(cases=[{"when": {"var": "payload.ok"}, "next": "e"}], default="f"),
            "e": {"type": "succeed", "output": {"id": "{{nodes.b.response.body.id}}"}},
            "f": {"type": "fail"},
        },
        notify={"failed": req(url="http://{{payload.host}}/alerts")},
    )
    spec = validate_definition(source).spec
    nodes = spec["nodes"]
    assert nodes["a"] == {"type": "parallel", "next": "d", "branches": ["b", "c"]}
    assert nodes["b"]["request"]["method"] == "PUT" and nodes["b"]["request"]["url"] == "{{payload.url}}"
    assert nodes["c"] == {"type": "sleep", "next": None, "duration_s": None, "until": "{{payload.wake_at}}"}
    assert nodes["e"] == {"type": "succeed", "next": None, "output": {"id": "{{nodes.b.response.body.id}}"}}
    assert nodes["f"]["next"] is None and nodes["f"]["error"]
    assert spec["notify"]["failed"]["retry"]["max_attempts"] == 1
    assert "succeeded" not in spec["notify"]


def test_loop_with_an_exit_is_valid():
    source = graph(
        {
            "poll": task(next="check"),
            "check": switch(cases=[{"when": {"var": "nodes.poll.response.body.done"}, "next": "done"}], default="wait"),
            "wait": sleep(duration_s=5, next="poll"),
            "done": {"type": "succeed"},
        }
    )
    assert validate_definition(source).errors == []


def test_failure_branch_target_is_reachable():
    source = graph({"a": task(on_failure="undo"), "undo": task()})
    assert validate_definition(source).errors == []


def test_literal_until_with_timezone_is_valid():
    assert validate_definition(graph({"a": sleep(until="2030-01-01T08:00:00+02:00")})).errors == []


def test_literal_until_at_the_last_second_of_year_9999_in_utc_is_valid():
    assert validate_definition(graph({"a": sleep(until="9999-12-31T23:59:59Z")})).errors == []


@pytest.mark.parametrize("until", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
def test_literal_until_outside_the_years_1_to_9999_in_utc_is_refused(until):
    message = f"until is out of range: it must fall within the years 1 to 9999 in UTC, got {until!r}"
    assert validate_definition(graph({"a": sleep(until=until)})).errors == [
        {"path": "nodes.a.until", "message": message}
    ]


def test_storing_an_until_past_year_9999_in_utc_is_a_400_naming_it(api):
    until = "9999-12-31T23:59:59-23:59"
    response = api.post("/api/v1/definitions/", graph({"a": sleep(until=until)}), format="json")
    assert response.status_code == 400
    message = f"until is out of range: it must fall within the years 1 to 9999 in UTC, got {until!r}"
    assert response.json()["errors"] == [{"path": "nodes.a.until", "message": message}]


def test_the_editor_block_is_kept_out_of_the_spec():
    drawn = graph(editor={"direction": "LR", "positions": {"a": [12, -40.5]}})
    result = validate_definition(drawn)
    assert result.errors == []
    assert "editor" not in result.spec
    assert result.spec == validate_definition(graph()).spec
