"""Version diffs: definitions.diff (pure), GET definitions/{name}/versions/{a}/diff/{b}/, and the admin section."""

import copy

import pytest
from django.contrib.auth.models import User

from definitions.diff import diff_specs, diff_values
from tests.support.definitions import DefinitionFactory

pytestmark = pytest.mark.django_db


def graph(**changes):
    source = {
        "name": "checkout",
        "kind": "graph",
        "start": "reserve",
        "nodes": {
            "reserve": {
                "type": "task",
                "request": {"method": "POST", "url": "http://svc.local/reserve"},
                "retry": {"max_attempts": 2},
                "next": "route",
            },
            "route": {
                "type": "switch",
                "cases": [{"when": {"==": [{"var": "payload.m"}, "pix"]}, "next": "pix"}],
                "default": "card",
            },
            "pix": {"type": "task", "request": {"method": "POST", "url": "http://svc.local/pix"}},
            "card": {"type": "task", "request": {"method": "POST", "url": "http://svc.local/card"}},
        },
    }
    for change in changes.values():
        change(source)
    return source


def v2(source):
    source["nodes"]["reserve"]["request"]["url"] = "http://svc.local/v2/reserve"
    source["nodes"]["reserve"]["retry"] = {"max_attempts": 5, "retry_on": ["5xx"]}
    source["nodes"]["route"]["cases"][0]["next"] = "card"
    source["nodes"]["route"]["default"] = "wallet"
    del source["nodes"]["pix"]
    source["nodes"]["wallet"] = {"type": "task", "request": {"method": "POST", "url": "http://svc.local/wallet"}}
    source["notify"] = {"failed": {"method": "POST", "url": "http://ops.local/alerts"}}


def stored(version, source):
    return DefinitionFactory(name="checkout", version=version, source=source)


def test_added_removed_and_changed_nodes_with_dotted_fields():
    old, new = stored(1, graph()), stored(2, graph(change=v2))
    diff = diff_specs(old.spec, new.spec)
    assert diff["added"] == ["wallet"]
    assert diff["removed"] == ["pix"]
    changed = {node["id"]: node["fields"] for node in diff["changed"]}
    assert set(changed) == {"reserve", "route"}
    assert changed["reserve"] == {
        "request.url": {"from": "http://svc.local/reserve", "to": "http://svc.local/v2/reserve"},
        "retry.max_attempts": {"from": 2, "to": 5},
        "retry.retry_on": {"from": ["network", "timeout", 408, 429, "5xx"], "to": ["5xx"]},
    }
    assert changed["route"] == {
        "cases[0].next": {"from": "pix", "to": "card"},
        "default": {"from": "card", "to": "wallet"},
    }
    assert diff["top_level"] == {
        "notify.failed.method": {"from": None, "to": "POST"},
        "notify.failed.url": {"from": None, "to": "http://ops.local/alerts"},
        "notify.failed.headers": {"from": None, "to": {}},
        "notify.failed.query": {"from": None, "to": {}},
        "notify.failed.timeout_s": {"from": None, "to": 10.0},
        "notify.failed.success_status": {"from": None, "to": None},
        "notify.failed.retry.max_attempts": {"from": None, "to": 1},
        "notify.failed.retry.backoff_s": {"from": None, "to": 1.0},
        "notify.failed.retry.multiplier": {"from": None, "to": 2.0},
        "notify.failed.retry.max_backoff_s": {"from": None, "to": 60.0},
        "notify.failed.retry.retry_on": {"from": None, "to": ["network", "timeout", 408, 429, "5xx"]},
    }


def test_a_change_of_spelling_the_engine_does_not_see_is_no_change():
    spelled_out = graph()
    spelled_out["nodes"]["reserve"]["retry"] = {"max_attempts": 2, "backoff_s": 1, "multiplier": 2}
    spelled_out["nodes"]["pix"]["request"]["method"] = "post"
    diff = diff_specs(stored(1, graph()).spec, stored(2, spelled_out).spec)
    assert diff == {"added": [], "removed": [], "changed": [], "top_level": {}}


def test_values_of_another_json_type_differ_even_when_python_says_equal():
    assert diff_values({"a": 1}, {"a": True}) == {"a": {"from": 1, "to": True}}
    assert diff_values({"a": [1, 2]}, {"a": [1, 2]}) == {}
    assert diff_values({"a": [{"x": 1}]}, {"a": [{"x": 1}, {"x": 2}]}) == {"a[1].x": {"from": None, "to": 2}}


def test_diff_is_pure():
    old, new = graph(), graph(change=v2)
    old_copy, new_copy = copy.deepcopy(old), copy.deepcopy(new)
    diff_specs(old, new)
    assert (old, new) == (old_copy, new_copy)


def test_api_answers_the_diff_between_two_versions(api):
    stored(1, graph())
    stored(2, graph(change=v2))
    response = api.get("/api/v1/definitions/checkout/versions/1/diff/2/")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["from_version"], body["to_version"]) == ("checkout", 1, 2)
    assert body["added"] == ["wallet"] and body["removed"] == ["pix"]
    route = next(node for node in body["changed"] if node["id"] == "route")
    assert route["fields"]["default"] == {"from": "card", "to": "wallet"}
    assert body["top_level"]["notify.failed.url"] == {"from": None, "to": "http://ops.local/alerts"}

    backwards = api.get("/api/v1/definitions/checkout/versions/2/diff/1/").json()
    assert (backwards["added"], backwards["removed"]) == (["pix"], ["wallet"])
    same = api.get("/api/v1/definitions/checkout/versions/1/diff/1/").json()
    assert (same["added"], same["removed"], same["changed"], same["top_level"]) == ([], [], [], {})


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/definitions/nope/versions/1/diff/2/",
        "/api/v1/definitions/checkout/versions/1/diff/3/",
        "/api/v1/definitions/checkout/versions/9/diff/1/",
    ],
)
def test_unknown_name_or_version_is_a_json_404(api, url):
    stored(1, graph())
    stored(2, graph(change=v2))
    response = api.get(url)
    assert response.status_code == 404
    assert "detail" in response.json()


def test_inline_definitions_are_not_diffed(api):
    DefinitionFactory(name="checkout", version=0, is_inline=True, source=graph())
    assert api.get("/api/v1/definitions/checkout/versions/0/diff/0/").status_code == 404


def test_admin_change_page_shows_the_diff_against_the_previous_version_escaped(client):
    first = stored(1, graph())
    evil = graph(change=v2)
    evil["nodes"]["reserve"]["request"]["url"] = "http://svc.local/v2/reserve?<script>alert(1)</script>"
    newest = stored(2, evil)
    admin = User.objects.create_superuser("admin", "a@example.com", "pw")
    client.force_login(admin)
    page = client.get(f"/admin/definitions/definition/{newest.pk}/change/").content.decode()
    assert "Changes since the previous version" in page
    assert "<th>v1</th><th>v2</th>" in page
    assert "reserve.request.url" in page and "http://svc.local/v2/reserve" in page
    assert "node wallet" in page and "node pix" in page
    assert "/api/v1/definitions/checkout/versions/1/diff/2/" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page

    first_page = client.get(f"/admin/definitions/definition/{first.pk}/change/").content.decode()
    assert "first version" in first_page
