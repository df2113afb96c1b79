"""trama_export: definitions to files, which trama_import reads back unchanged."""

import json

import pytest

from definitions.models import Definition
from definitions.services import store_definition
from tests.support.commands import example, fails, run


@pytest.mark.django_db
def test_export_then_import_round_trips_and_reimport_is_unchanged(tmp_path):
    flow = example("order-flow.json")
    store_definition(flow)
    changed = json.loads(json.dumps(flow))
    changed["nodes"]["pix"]["timeout_s"] = 120
    store_definition(changed)
    store_definition(example("order-saga.json"))

    out = run("trama_export", "--dir", str(tmp_path / "defs"))
    assert "exported 2 definition file(s)" in out
    assert json.loads((tmp_path / "defs" / "order-flow.json").read_text()) == changed
    assert json.loads((tmp_path / "defs" / "order-saga.json").read_text()) == example("order-saga.json")

    again = run("trama_import", str(tmp_path / "defs"))
    assert "unchanged (order-flow v2)" in again and "unchanged (order-saga v1)" in again
    assert Definition.objects.count() == 3

    edited = tmp_path / "defs" / "order-flow.json"
    edited.write_text(json.dumps(flow))
    assert "stored (order-flow v3)" in run("trama_import", str(edited))
    assert Definition.objects.get(name="order-flow", version=3).source == flow


@pytest.mark.django_db
def test_export_all_versions_writes_one_file_per_version_and_imports_unchanged(tmp_path):
    flow = example("order-flow.json")
    store_definition(flow)
    store_definition(flow | {"defaults": {"request": {"timeout_s": 3}}})
    run("trama_export", "order-flow", "--all-versions", "--dir", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["order-flow.v1.json", "order-flow.v2.json"]
    out = run("trama_import", str(tmp_path))
    assert "v1.json: unchanged (order-flow v1)" in out and "v2.json: unchanged (order-flow v2)" in out
    assert Definition.objects.count() == 2


@pytest.mark.django_db
def test_export_unknown_definition_is_an_error(tmp_path):
    store_definition(example("order-saga.json"))
    assert "unknown definition(s): nope" in str(fails("trama_export", "nope", "--dir", str(tmp_path)))
    assert not list(tmp_path.iterdir())
