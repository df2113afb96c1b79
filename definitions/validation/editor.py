"""The ``editor`` block: how the graph editor draws a definition (direction, hand-placed nodes).

It is presentation only, like ``description``: kept in the stored source, never in
the normalized spec, so it changes no digest and nothing the engine runs. It is
still checked, so a stored source never holds something the pages cannot draw.
"""

import math
from typing import Any

from definitions.validation.problems import Problems, check_keys, expect_object, join
from trama_project.jsonvalues import type_name

DIRECTIONS = ("TB", "LR")
# Far beyond any drawing (a 1000-node chain is ~106,000 px long), near enough to keep SVG numbers sane.
MAX_COORDINATE = 1_000_000


def check_editor(source: dict, node_ids: set[str], problems: Problems) -> None:
    """``editor: {"direction": "TB" | "LR", "positions": {node id: [x, y]}}``, both optional."""
    if "editor" not in source:
        return
    editor = expect_object(source["editor"], "editor", problems)
    if editor is None:
        return
    check_keys(editor, "editor", {"direction", "positions"}, problems)
    direction = editor.get("direction", "TB")
    if direction not in DIRECTIONS:
        problems.add("editor.direction", f"direction must be TB (top-down) or LR (left-right), got {direction!r}")
    if "positions" in editor:
        _check_positions(editor["positions"], node_ids, problems)


def _check_positions(positions: Any, node_ids: set[str], problems: Problems) -> None:
    if expect_object(positions, "editor.positions", problems) is None:
        return
    for node_id, point in positions.items():
        path = join("editor.positions", str(node_id))
        if node_id not in node_ids:
            problems.add(path, f"no node '{node_id}' to place")
        elif not _is_point(point):
            bound = f"{MAX_COORDINATE:,}"
            problems.add(path, f"a position must be [x, y], two numbers within ±{bound}, got {_shown(point)}")


def _is_point(point: Any) -> bool:
    return (
        isinstance(point, list)
        and len(point) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in point)
        and all(abs(v) <= MAX_COORDINATE for v in point)
    )


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, list) else type_name(value)
    return text if len(text) <= 60 else text[:57] + "..."
