"""The definitions API: store, version, read, list, validate, and refuse bad input storing nothing."""

import json

import pytest
from rest_framework.test import APIClient

from definitions.models import Definition
from tests.support.definitions import DefinitionFactory, saga_source

pytestmark = pytest.mark.django_db


def store(api, source):
    return api.post("/api/v1/definitions/", source, format="json")


def test_store_returns_201_with_version_one_and_normalized_spec(api):
    response = store(api, saga_source("orders"))
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["version"], body["kind"], body["node_count"]) == ("orders", 1, "saga", 1)
    assert body["spec"]["nodes"]["call"]["retry"]["max_attempts"] == 1
    assert body["source"] == saga_source("orders")
    assert body["created_by"] == "token:tests"
    row = Definition.objects.get(name="orders")
    assert (row.version, row.is_inline, len(row.digest)) == (1, False, 64)


def test_storing_the_same_name_again_creates_the_next_version(api):
    store(api, saga_source("orders"))
    response = store(api, saga_source("orders", url="http://svc.local/v2/orders"))
    assert response.json()["version"] == 2
    assert list(Definition.objects.filter(name="orders").values_list("version", flat=True)) == [2, 1]
    first = Definition.objects.get(name="orders", version=1)
    assert first.spec["nodes"]["call"]["request"]["url"] == "http://svc.local/orders"  # old versions never change


def test_invalid_definition_answers_400_with_every_error_and_stores_nothing(api):
    source = saga_source("orders")
    source["steps"][0]["request"]["method"] = "FETCH"
    source["extra"] = True
    response = store(api, source)
    assert response.status_code == 400
    body = response.json()
    assert {e["path"] for e in body["errors"]} == {"extra", "steps[0].request.method"}
    assert body["detail"]
    assert Definition.objects.count() == 0


def test_get_latest_version(api):
    DefinitionFactory(name="orders", version=1)
    DefinitionFactory(name="orders", version=2, source=saga_source("orders", url="http://svc.local/two"))
    response = api.get("/api/v1/definitions/orders/")
    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["spec"]["nodes"]["call"]["request"]["url"] == "http://svc.local/two"


def test_get_one_version(api):
    DefinitionFactory(name="orders", version=1)
    DefinitionFactory(name="orders", version=2)
    response = api.get("/api/v1/definitions/orders/versions/1/")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["version"]) == ("orders", 1)


def test_versions_list_is_newest_first(api):
    for version in (1, 2, 3):
        DefinitionFactory(name="orders", version=version)
    response = api.get("/api/v1/definitions/orders/versions/")
    assert response.status_code == 200
    assert [item["version"] for item in response.json()["results"]] == [3, 2, 1]
    assert response.json()["count"] == 3


def test_list_shows_the_latest_version_of_each_name_paginated(api):
    for name in ("alpha", "beta", "gamma"):
        DefinitionFactory(name=name, version=1)
    DefinitionFactory(name="beta", version=2)
    DefinitionFactory(name="inline", version=0, is_inline=True)
    first = api.get("/api/v1/definitions/", {"limit": 2}).json()
    assert first["count"] == 3
    assert [(d["name"], d["version"]) for d in first["results"]] == [("alpha", 1), ("beta", 2)]
    second = api.get(first["next"]).json()
    assert [d["name"] for d in second["results"]] == ["gamma"]


def test_list_filters_by_name(api):
    DefinitionFactory(name="orders")
    DefinitionFactory(name="refunds")
    results = api.get("/api/v1/definitions/", {"name": "ORD"}).json()["results"]
    assert [d["name"] for d in results] == ["orders"]


def test_inline_definitions_are_not_listed_or_found_by_name(api):
    DefinitionFactory(name="inline", version=0, is_inline=True)
    assert api.get("/api/v1/definitions/").json()["count"] == 0
    assert api.get("/api/v1/definitions/inline/").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/definitions/missing/",
        "/api/v1/definitions/missing/versions/",
        "/api/v1/definitions/orders/versions/9/",
        "/api/v1/definitions/not a name!/",
    ],
)
def test_unknown_names_and_versions_answer_404_json(api, url):
    DefinitionFactory(name="orders", version=1)
    response = api.get(url)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_validate_answers_the_normalized_spec_without_storing(api):
    response = api.post("/api/v1/definitions/validate/", saga_source("orders"), format="json")
    assert response.status_code == 200
    assert response.json()["valid"] is True
    assert response.json()["spec"]["nodes"]["call"]["next"] is None
    assert Definition.objects.count() == 0


def test_validate_answers_400_with_paths(api):
    source = {
        "name": "checkout",
        "kind": "graph",
        "start": "route",
        "nodes": {
            "route": {"type": "switch", "cases": [{"when": True, "next": "pixx"}], "default": "card"},
            "card": {"type": "task", "request": {"method": "POST", "url": "http://cards"}},
        },
    }
    response = api.post("/api/v1/definitions/validate/", source, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "nodes.route.cases[0].next: unknown node 'pixx'",
        "errors": [{"path": "nodes.route.cases[0].next", "message": "unknown node 'pixx'"}],
    }


def test_malformed_json_answers_400(api):
    response = api.post("/api/v1/definitions/", '{"name": "orders", ', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert Definition.objects.count() == 0


def test_json_that_is_not_an_object_answers_400(api):
    response = api.post("/api/v1/definitions/", "[1, 2]", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == ""
    assert Definition.objects.count() == 0


def test_wrong_content_type_answers_415_json(api):
    body = json.dumps(saga_source("orders"))
    response = api.post("/api/v1/definitions/", body, content_type="text/plain")
    assert response.status_code == 415
    assert "text/plain" in response.json()["detail"]
    assert Definition.objects.count() == 0


def test_ten_megabyte_body_answers_413(api):
    source = saga_source("orders")
    source["description"] = "x" * (10 * 1024 * 1024)
    response = api.post("/api/v1/definitions/", json.dumps(source), content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert Definition.objects.count() == 0


def test_ten_thousand_nodes_answers_400_naming_the_limit(api, settings):
    settings.TRAMA_MAX_REQUEST_BYTES = 50 * 1024 * 1024  # let the body through to reach the node limit
    steps = [{"id": f"s{i}", "request": {"method": "POST", "url": "http://svc/x"}} for i in range(10_000)]
    response = store(api, {"name": "huge", "kind": "saga", "steps": steps})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert len(errors) == 1 and "node limit" in errors[0]["message"]
    assert Definition.objects.count() == 0


def test_endpoints_need_a_token(db):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/definitions/").status_code == 401
    assert anonymous.post("/api/v1/definitions/", saga_source("x"), format="json").status_code == 401
    assert Definition.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_stores_of_one_name_get_distinct_versions():
    import threading

    from django.db import connection

    from definitions.services import store_definition

    barrier, versions, failures = threading.Barrier(4), [], []

    def worker(index):
        try:
            barrier.wait()
            versions.append(store_definition(saga_source("race", url=f"http://svc/{index}")).version)
        except Exception as exc:  # reported below; a thread's exception would otherwise be lost
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(versions) == [1, 2, 3, 4]


def test_inline_definitions_are_shared_by_digest():
    from definitions.services import store_inline_definition

    source = {"kind": "saga", "steps": [{"id": "a", "request": {"method": "GET", "url": "http://svc/a"}}]}
    first = store_inline_definition(source)
    again = store_inline_definition({**source, "description": "same graph"})
    assert (first.is_inline, first.version, first.name) == (True, 0, "inline")
    assert again.pk == first.pk
    assert Definition.objects.count() == 1


def test_storing_what_the_latest_version_already_says_stores_nothing_and_answers_200(api):
    assert store(api, saga_source("orders")).status_code == 201
    again = store(api, saga_source("orders"))
    assert again.status_code == 200
    assert again.json()["version"] == 1
    described = store(api, {**saga_source("orders"), "description": "now with a description"})
    assert (described.status_code, described.json()["version"]) == (201, 2)
    assert list(Definition.objects.filter(name="orders").values_list("version", flat=True)) == [2, 1]


def test_moving_nodes_in_the_editor_stores_a_version_and_the_same_drawing_again_does_not(api):
    assert store(api, saga_source("orders")).status_code == 201
    drawn = {**saga_source("orders"), "editor": {"direction": "LR", "positions": {"call": [10, 20]}}}
    moved = store(api, drawn)
    assert (moved.status_code, moved.json()["version"]) == (201, 2)
    again = store(api, drawn)
    assert (again.status_code, again.json()["version"]) == (200, 2)
    stored = Definition.objects.get(name="orders", version=2)
    assert stored.editor_drawing == {"direction": "LR", "positions": {"call": [10, 20]}}
    assert stored.digest == Definition.objects.get(name="orders", version=1).digest  # the engine runs the same spec
