"""What changed between two versions of a definition, computed on their normalized specs. Pure.

Comparing specs (not sources) means a change of spelling that the engine does not
see (a default written out, a saga rewritten as the same graph) is no change.
Fields are named by dotted paths with ``[i]`` for list items, as validation
errors are (``request.url``, ``cases[0].next``); lists of plain values
(``retry.retry_on``, ``success_status``) and empty objects compare as one value.
"""

from typing import Any

ABSENT = None  # how a field that exists on one side only is shown on the other


def diff_specs(old: dict, new: dict) -> dict:
    """``{"added", "removed", "changed", "top_level"}`` from ``old`` to ``new`` (both normalized specs)."""
    old_nodes, new_nodes = old.get("nodes") or {}, new.get("nodes") or {}
    changed = []
    for node_id in new_nodes:
        if node_id in old_nodes:
            fields = diff_values(old_nodes[node_id], new_nodes[node_id])
            if fields:
                changed.append({"id": node_id, "fields": fields})
    top_old = {key: value for key, value in old.items() if key != "nodes"}
    top_new = {key: value for key, value in new.items() if key != "nodes"}
    return {
        "added": [node_id for node_id in new_nodes if node_id not in old_nodes],
        "removed": [node_id for node_id in old_nodes if node_id not in new_nodes],
        "changed": changed,
        "top_level": diff_values(top_old, top_new),
    }


def diff_values(old: Any, new: Any) -> dict[str, dict]:
    """``{"<dotted field>": {"from", "to"}}`` for every leaf that differs between two JSON values."""
    before, after = flatten(old), flatten(new)
    keys = list(before) + [key for key in after if key not in before]
    return {
        key: {"from": before.get(key, ABSENT), "to": after.get(key, ABSENT)}
        for key in keys
        if key not in before or key not in after or not _same(before[key], after[key])
    }


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``true`` and ``1`` differ although Python says True == 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Leaves of ``value`` by dotted path; the whole value under ``""`` when it is a leaf itself."""
    if isinstance(value, dict) and value:
        items = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return {path: value}
    leaves: dict[str, Any] = {}
    for item_path, item in items:
        leaves |= flatten(item, item_path)
    return leaves
