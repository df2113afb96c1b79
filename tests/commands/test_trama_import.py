"""trama_import: files to definition versions, in order; invalid files store nothing."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from definitions.models import Definition
from tests.support.commands import example, fails, run


@pytest.mark.django_db
def test_import_into_an_empty_database_recreates_versions_in_order(tmp_path):
    for version in (1, 2, 10):
        source = example("order-flow.json") | {"name": "flow", "defaults": {"request": {"timeout_s": version}}}
        (tmp_path / f"flow.v{version}.json").write_text(json.dumps(source))
    run("trama_import", str(tmp_path))
    stored = Definition.objects.filter(name="flow").order_by("version")
    assert [d.source["defaults"]["request"]["timeout_s"] for d in stored] == [1, 2, 10]


@pytest.mark.django_db
def test_import_invalid_file_prints_each_error_path_and_stores_nothing(tmp_path):
    bad = example("order-flow.json")
    bad["nodes"]["route"]["cases"][0]["next"] = "pixx"
    bad["nodes"]["reserve"]["retry"]["max_attempts"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "broken.json").write_text("{nope")
    out = StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("trama_import", str(tmp_path), stdout=out)
    assert "2 of 2 file(s) invalid" in str(caught.value)
    text = out.getvalue()
    assert "nodes.route.cases[0].next: unknown node 'pixx'" in text
    assert "nodes.reserve.retry.max_attempts" in text
    assert "broken.json: invalid" in text and "not valid JSON" in text
    assert not Definition.objects.exists()


@pytest.mark.django_db
def test_import_missing_path_is_an_error(tmp_path):
    assert "is neither a file nor a directory" in str(fails("trama_import", str(tmp_path / "nope.json")))
