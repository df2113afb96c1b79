"""POST /api/v1/expressions/evaluate/: try a JSON Logic rule against data."""

import pytest

pytestmark = pytest.mark.django_db

URL = "/api/v1/expressions/evaluate/"


def evaluate(api, body):
    return api.post(URL, body, format="json")


def test_evaluates_a_switch_rule(api):
    rule = {"==": [{"var": "payload.method"}, "pix"]}
    response = evaluate(api, {"rule": rule, "data": {"payload": {"method": "pix"}}})
    assert response.status_code == 200
    assert response.json() == {"result": True}


def test_returns_non_boolean_results(api):
    rule = {"+": [{"var": "nodes.a.response.body.n"}, 1]}
    response = evaluate(api, {"rule": rule, "data": {"nodes": {"a": {"response": {"body": {"n": 41}}}}}})
    assert response.json() == {"result": 42}


def test_data_defaults_to_empty(api):
    assert evaluate(api, {"rule": {"var": ["missing", "fallback"]}}).json() == {"result": "fallback"}


def test_unknown_operator_answers_400_naming_it(api):
    response = evaluate(api, {"rule": {"and": [True, {"method": ["x", "upper"]}]}, "data": {}})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"path": "rule.and[1]", "message": "unknown operator 'method'"}]


def test_evaluation_error_answers_400(api):
    response = evaluate(api, {"rule": {"/": [1, 0]}, "data": {}})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["path"] == "rule"
    assert "ZeroDivisionError" in body["errors"][0]["message"]


def test_missing_rule_answers_400(api):
    response = evaluate(api, {"data": {}})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "rule"


def test_data_must_be_an_object(api):
    response = evaluate(api, {"rule": True, "data": [1]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "data"


def test_needs_a_token(db):
    from rest_framework.test import APIClient

    assert APIClient().post(URL, {"rule": True}, format="json").status_code == 401
