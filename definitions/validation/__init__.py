"""Validate a definition as an author wrote it and normalize it (docs/normalized-spec.md).

:func:`validate_definition` is the only entry point. It collects every problem in
one pass, each ``{"path", "message"}`` with a SPEC 2.4 JSON path, and returns the
normalized spec only when there are none.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from definitions import upstream
from definitions.templating import DIALECTS
from definitions.validation.editor import check_editor
from definitions.validation.graph import check_node_references, check_structure
from definitions.validation.nodes import Context, validate_node
from definitions.validation.problems import Problems, check_keys, read_string, type_name
from definitions.validation.requests import read_defaults, read_notify
from definitions.validation.saga import Layout, graph_layout, saga_layout
from trama_project.jsonvalues import nesting_depth

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# Names that would collide with fixed API paths under definitions/.
RESERVED_NAMES = {"validate", "simulate"}
KINDS = {"saga": ({"steps"}, saga_layout), "graph": ({"start", "nodes"}, graph_layout)}
COMMON_FIELDS = {"name", "kind", "description", "defaults", "notify", "dialect", "editor"}
# Deeper JSON is refused before any recursive check walks it (no real definition comes close).
MAX_DEPTH = 64


@dataclass
class ValidationResult:
    """``spec`` is the normalized definition when ``errors`` is empty, else None."""

    spec: dict | None
    errors: list[dict] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors


def validate_definition(source: Any) -> ValidationResult:
    """Check ``source`` (parsed JSON) completely; see the module docstring."""
    if upstream.is_upstream(source):  # SPEC 2.2: the original runtime's JSON is converted first
        spec, errors = upstream.validate_upstream(source, validate_definition)
        return ValidationResult(spec, errors)
    problems = Problems()
    if not isinstance(source, dict):
        problems.add("", f"a definition must be a JSON object, got {type_name(source)}")
        return ValidationResult(None, problems.items)
    if nesting_depth(source, MAX_DEPTH) > MAX_DEPTH:
        problems.add("", f"the definition nests objects and lists deeper than {MAX_DEPTH} levels")
        return ValidationResult(None, problems.items)
    name, kind = _name(source, problems), _kind(source, problems)
    kind_fields = KINDS[kind][0] if kind else {"steps", "start", "nodes"}
    check_keys(source, "", COMMON_FIELDS | kind_fields, problems)
    _description(source, problems)
    defaults = read_defaults(source.get("defaults"), problems)
    defaults.dialect = _dialect(source, problems)
    layout = KINDS[kind][1](source, problems) if kind else None
    notify = read_notify(source["notify"], problems, defaults) if "notify" in source else None
    if layout is None:
        return ValidationResult(None, problems.items)
    nodes = _nodes(layout, Context(problems, defaults, layout.node_ids))
    check_editor(source, layout.node_ids, problems)
    if problems:
        return ValidationResult(None, problems.items)
    spec = {"name": name, "kind": kind, "start": layout.start, "nodes": nodes}
    if notify is not None:
        spec["notify"] = notify
    if defaults.dialect is not None:
        spec["dialect"] = defaults.dialect
    return ValidationResult(spec, [])


def _nodes(layout: Layout, ctx: Context) -> dict[str, dict]:
    """Validate every node, then the graph they form; returns the normalized nodes."""
    nodes, paths = {}, {}
    for node_id, path, raw in layout.entries:
        node = validate_node(raw, path, ctx)
        if node is not None:
            nodes[node_id], paths[node_id] = node, path
        if isinstance(raw, dict):
            check_node_references(raw, path, ctx.node_ids, ctx.problems, ctx.defaults.dialect)
    if layout.start is not None:
        check_structure(layout.start, nodes, paths, ctx.problems)
    return nodes


def _name(source: dict, problems: Problems) -> str | None:
    name = read_string(source, "name", "", problems)
    if name is None:
        return None
    if len(name) > 200:
        problems.add("name", f"name must be at most 200 characters, got {len(name)}")
    elif not NAME.fullmatch(name):
        problems.add("name", f"name must match ^{NAME.pattern}$ (letters, digits, '_', '.', '-'), got {name!r}")
    elif name in RESERVED_NAMES:
        problems.add("name", f"name '{name}' is reserved (it is an API path)")
    else:
        return name
    return None


def _kind(source: dict, problems: Problems) -> str | None:
    kind = read_string(source, "kind", "", problems)
    if kind is not None and kind not in KINDS:
        problems.add("kind", f"unknown kind '{kind}' (expected saga or graph)")
        return None
    return kind


def _description(source: dict, problems: Problems) -> None:
    """An optional note for people; kept in the stored source, not in the spec."""
    description = source.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 2000):
        problems.add("description", "description must be a string of at most 2000 characters")


def _dialect(source: dict, problems: Problems) -> dict | None:
    """``{"name": "trama-v1" | "trama-v2", "version": "..."}``: the definition was written for the original
    runtime, whose template and callback rules it runs with (docs/upstream.md); definitions/upstream.py
    writes it when it converts one. Absent: Trama's own rules."""
    dialect = source.get("dialect")
    if dialect is None:
        return None
    if not isinstance(dialect, dict) or dialect.get("name") not in DIALECTS:
        problems.add("dialect", f"dialect must be an object whose name is one of {', '.join(DIALECTS)}")
        return None
    check_keys(dialect, "dialect", {"name", "version"}, problems)
    if not isinstance(dialect.get("version", ""), str):
        problems.add("dialect.version", f"version must be a string, got {type_name(dialect['version'])}")
        return None
    return {"name": dialect["name"], "version": dialect.get("version", "")}
