"""No definition answers 500, in either format (issue 16, item 6).

Hypothesis throws three kinds of body at ``definitions/validate/`` and ``definitions/``:
definitions in the original's format and native ones, each a valid definition with
random mutations (a value replaced by random JSON of any type, a key removed, an
unknown key added), and arbitrary JSON. Only 200, 201 and 400 are acceptable answers.
Bounded and deterministic (``derandomize``) so the suite stays stable; to hunt further,
``TRAMA_FUZZ_EXAMPLES=2000 TRAMA_FUZZ_RANDOM=1 pytest tests/test_definitions_never_500.py``.
"""

import copy
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_upstream import async_demo, checkout, editor_template, saga_demo, square_chain

pytestmark = pytest.mark.django_db

NATIVE = {
    "name": "native",
    "kind": "graph",
    "defaults": {"retry": {"max_attempts": 2}, "request": {"timeout_s": 5}},
    "start": "a",
    "nodes": {
        "a": {
            "type": "task",
            "request": {"method": "POST", "url": "http://svc.local/a", "body": {"x": "{{payload.x}}"}},
            "next": "s",
        },
        "s": {"type": "switch", "cases": [{"when": {"==": [{"var": "payload.x"}, 1]}, "next": "w"}], "default": "b"},
        "w": {"type": "sleep", "duration_s": 1, "next": "b"},
        "b": {
            "type": "async_task",
            "request": {"method": "POST", "url": "http://svc.local/b"},
            "callback": {"success_when": {"==": [{"var": "ok"}, True]}},
            "timeout_s": 60,
        },
    },
    "notify": {"succeeded": {"method": "POST", "url": "http://svc.local/n"}},
}
SEEDS = [checkout(), saga_demo(), square_chain(2), async_demo(), editor_template("async-callback"), NATIVE]
KEYS = [
    "name",
    "version",
    "kind",
    "failureHandling",
    "type",
    "maxAttempts",
    "delayMillis",
    "steps",
    "up",
    "down",
    "url",
    "verb",
    "headers",
    "body",
    "successStatusCodes",
    "entrypoint",
    "nodes",
    "id",
    "action",
    "mode",
    "request",
    "callback",
    "timeoutMillis",
    "successWhen",
    "when",
    "cases",
    "target",
    "default",
    "value",
    "durationMillis",
    "next",
    "onSuccessCallback",
    "start",
    "method",
    "success_status",
    "retry",
    "notify",
]

HUGE = 10**400  # JSON allows it; beyond a float's range
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([HUGE, -HUGE])
    | st.floats(allow_nan=False, allow_infinity=False)
)
texts = st.sampled_from([*KEYS, "{{payload.x}}", "{{step.0.up.body}}", "{{#x}}", "{{", "http://h/{{sagaId}}", ""])
json_values = st.recursive(
    scalars | texts | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts | st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _containers(value, found):
    if isinstance(value, dict | list):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            _containers(item, found)
    return found


@st.composite
def mutated(draw):
    """A seed definition with 1-4 random mutations anywhere in it."""
    source = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(_containers(source, [])))
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                target[key] = draw(json_values)
            elif action == "delete":
                del target[key]
            else:
                target[draw(texts)] = draw(json_values)
        elif isinstance(target, list) and target:
            target[draw(st.integers(0, len(target) - 1))] = draw(json_values)
    return source


bodies = mutated() | json_values | st.dictionaries(texts, json_values, max_size=6)
FUZZ = settings(
    database=None,
    max_examples=int(os.environ.get("TRAMA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize="TRAMA_FUZZ_RANDOM" not in os.environ,  # set it to explore beyond the fixed examples
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("url", ["/api/v1/definitions/validate/", "/api/v1/definitions/"])
def test_no_definition_answers_500(api, url):
    @FUZZ
    @given(body=bodies)
    def check(body):
        response = api.post(url, body, format="json")
        assert response.status_code in (200, 201, 400), (response.status_code, body)

    check()


def test_integers_beyond_a_floats_range_are_a_400(api):
    """read_number called math.isfinite and formatted with :g, both OverflowError on such ints (a 500)."""
    native = copy.deepcopy(NATIVE)
    native["nodes"]["a"]["request"]["timeout_s"] = HUGE
    native["nodes"]["w"]["duration_s"] = -HUGE
    native["nodes"]["b"]["timeout_s"] = HUGE
    original = checkout()
    original["failureHandling"]["delayMillis"] = HUGE
    original["nodes"][3]["action"]["callback"]["timeoutMillis"] = HUGE
    for body, path in ((native, "nodes.a.request.timeout_s"), (original, "failureHandling.delayMillis")):
        response = api.post("/api/v1/definitions/validate/", body, format="json")
        assert response.status_code == 400
        found = {error["path"]: error["message"] for error in response.json()["errors"]}
        assert "digits)" in found[path], found


def test_json_text_nested_too_deep_is_a_400(api):
    """A switch rule given as JSON text is parsed; text nested 100 000 deep made json.loads recurse out.
    A body is the original's text, sent as rendered and never parsed: the same text is stored."""
    deep = "[" * 100_000 + "]" * 100_000
    v2 = checkout()
    v2["nodes"][1]["cases"][0]["when"] = deep
    response = api.post("/api/v1/definitions/", v2, format="json")
    assert response.status_code == 400
    assert "nodes[1].cases[0].when" in {error["path"] for error in response.json()["errors"]}
    v1 = saga_demo()
    v1["onSuccessCallback"]["body"] = deep
    response = api.post("/api/v1/definitions/", v1, format="json")
    assert response.status_code == 201
    assert response.json()["spec"]["notify"]["succeeded"]["body"] == deep
