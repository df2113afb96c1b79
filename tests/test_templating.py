"""definitions.templating: rendering `{{path}}` references and checking them statically."""

import pytest

from definitions.templating import TemplateError, references, render, template_problems

DATA = {
    "payload": {"amount": 10, "rate": 1.5, "ok": True, "note": None, "name": "ana", "items": [1, "b"], "obj": {"a": 1}},
    "nodes": {"reserve": {"response": {"status": 201, "body": {"id": "r-1", "items": [{"id": "i0"}, {"id": "i1"}]}}}},
    "execution": {"id": "e-1"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{payload.amount}}", 10),
        ("{{payload.rate}}", 1.5),
        ("{{payload.ok}}", True),
        ("{{payload.note}}", None),
        ("{{payload.items}}", [1, "b"]),
        ("{{payload.obj}}", {"a": 1}),
        ("{{ payload.name }}", "ana"),
    ],
)
def test_exact_reference_keeps_the_json_type(template, expected):
    result = render(template, DATA)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n={{payload.name}}", "n=ana"),
        ("n={{payload.amount}}", "n=10"),
        ("n={{payload.rate}}", "n=1.5"),
        ("n={{payload.ok}}", "n=true"),
        ("n={{payload.note}}", "n=null"),
        ("n={{payload.items}}", 'n=[1,"b"]'),
        ("n={{payload.obj}}", 'n={"a":1}'),
        (" {{payload.amount}}", " 10"),
        ("{{payload.amount}}/{{ payload.name }}", "10/ana"),
    ],
)
def test_embedded_reference_is_rendered_as_text(template, expected):
    assert render(template, DATA) == expected


def test_integer_segment_indexes_a_list():
    assert render("{{nodes.reserve.response.body.items.1.id}}", DATA) == "i1"


def test_render_recurses_into_dicts_and_lists_but_not_keys():
    value = {"{{payload.name}}": ["{{payload.amount}}", {"url": "http://x/{{nodes.reserve.response.body.id}}"}]}
    assert render(value, DATA) == {"{{payload.name}}": [10, {"url": "http://x/r-1"}]}


@pytest.mark.parametrize("value", [3, 2.5, True, None, "no templates here"])
def test_non_template_values_pass_through_unchanged(value):
    assert render(value, DATA) == value


def test_rendered_object_is_a_copy_of_the_data():
    rendered = render("{{payload.obj}}", DATA)
    rendered["a"] = 99
    assert DATA["payload"]["obj"] == {"a": 1}


def test_referenced_values_are_not_rendered_again():
    assert render("{{payload.x}}", {"payload": {"x": "{{secrets.KEY}}"}}) == "{{secrets.KEY}}"


@pytest.mark.parametrize(
    "path",
    [
        "nodes.reserve.response.body.missing",
        "nodes.charge.response.body.id",
        "nodes.reserve.response.body.items.5.id",
        "nodes.reserve.response.body.items.x",
        "payload.amount.more",
    ],
)
def test_missing_path_raises_template_error_naming_the_full_path(path):
    with pytest.raises(TemplateError, match=path.replace(".", r"\.")) as caught:
        render({"body": ["ok", f"id={{{{{path}}}}}"]}, DATA)
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("http://x/{{payload.id", "unclosed '{{'"),
        ("http://x/payload.id}}", "stray '}}'"),
        ("{{ }}", "empty template reference"),
        ("{{payload..id}}", "empty path segment"),
        ("{{.payload}}", "empty path segment"),
        ("{{payload.a b}}", "illegal characters"),
        ("{{payload.a$}}", "illegal characters"),
        ("{{foo.bar}}", "unknown template root 'foo'"),
        ("{{secrets}}", "exactly one secret"),
    ],
)
def test_malformed_template_is_reported_at_the_exact_path(template, message):
    definition = {"nodes": {"reserve": {"request": {"headers": {"X": "ok"}, "body": [1, {"u": template}]}}}}
    problems = template_problems(definition, "spec")
    assert len(problems) == 1
    assert problems[0]["path"] == "spec.nodes.reserve.request.body[1].u"
    assert message in problems[0]["message"]


def test_every_problem_in_a_string_is_reported():
    problems = template_problems("{{foo}} and {{payload.x", "url")
    assert [p["path"] for p in problems] == ["url", "url"]
    assert "unknown template root 'foo'" in problems[0]["message"]
    assert "unclosed" in problems[1]["message"]


@pytest.mark.parametrize(
    "value",
    ["{{payload.a}}", "{{ nodes.x.response.body.0 }}", "{{execution.id}}-{{callback.token}}", "{{secrets.API_KEY}}", 7],
)
def test_well_formed_templates_have_no_problems(value):
    assert template_problems(value, "p") == []


def test_references_lists_each_path_in_order_without_duplicates():
    value = {
        "url": "http://x/{{ nodes.reserve.response.body.id }}/{{payload.a}}",
        "body": ["{{payload.a}}", {"k": "{{execution.id}}"}, 3],
        "{{payload.key}}": "plain",
    }
    assert references(value) == ["nodes.reserve.response.body.id", "payload.a", "execution.id"]


def test_references_skips_malformed_templates():
    assert references(["{{payload..x}}", "{{ }}", "{{payload.ok}}"]) == ["payload.ok"]
