"""Reading the node list of either kind: a saga's steps or a graph's nodes.

Both give a :class:`Layout`: the start node and, in author order, each node's id,
JSON path and raw content. A saga step becomes a ``task`` (or ``async_task``)
node whose ``next`` is the following step.
"""

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from definitions.validation.nodes import node_id_problem
from definitions.validation.problems import Problems, expect_object, join, read_string

STEP_TYPES = ("task", "async_task")


@dataclass
class Layout:
    start: str | None
    entries: list[tuple[str, str, Any]] = field(default_factory=list)  # (node id, path, raw node)

    @property
    def node_ids(self) -> set[str]:
        return {node_id for node_id, _, _ in self.entries}


def _too_many(count: int, path: str, problems: Problems) -> bool:
    """One problem (not one per node) when a definition is over TRAMA_MAX_NODES."""
    limit = settings.TRAMA_MAX_NODES
    if count > limit:
        problems.add(path, f"{path} has {count} entries; the node limit is {limit} (TRAMA_MAX_NODES)")
    return count > limit


def graph_layout(source: dict, problems: Problems) -> Layout | None:
    nodes = source.get("nodes")
    if "nodes" not in source:
        problems.add("nodes", "nodes is required for a graph")
        return None
    if expect_object(nodes, "nodes", problems) is None or _too_many(len(nodes), "nodes", problems):
        return None
    if not nodes:
        problems.add("nodes", "nodes must hold at least one node")
    for node_id in nodes:
        if message := node_id_problem(node_id):
            problems.add(join("nodes", node_id), message)
    start = read_string(source, "start", "", problems)
    if start is not None and start not in nodes:
        problems.add("start", f"unknown node '{start}'")
        start = None
    return Layout(start, [(node_id, join("nodes", node_id), raw) for node_id, raw in nodes.items()])


def saga_layout(source: dict, problems: Problems) -> Layout | None:
    steps = source.get("steps")
    if not isinstance(steps, list) or not steps:
        problems.add("steps", "steps must be a non-empty list" if "steps" in source else "steps is required for a saga")
        return None
    if _too_many(len(steps), "steps", problems):
        return None
    ids = [_step_id(step, f"steps[{index}]", problems) for index, step in enumerate(steps)]
    for index, node_id in enumerate(ids):
        if node_id is not None and node_id in ids[:index]:
            problems.add(f"steps[{index}].id", f"duplicate step id '{node_id}'")
    entries = []
    for index, (step, node_id) in enumerate(zip(steps, ids, strict=True)):
        if node_id is not None and node_id not in ids[:index]:
            later = [later_id for later_id in ids[index + 1 :] if later_id not in ids[: index + 1]]
            entries.append((node_id, f"steps[{index}]", _step_node(step, f"steps[{index}]", later, problems)))
    return Layout(ids[0], entries)


def _step_id(step: Any, path: str, problems: Problems) -> str | None:
    if not isinstance(step, dict):
        expect_object(step, path, problems)
        return None
    node_id = read_string(step, "id", path, problems)
    if node_id is not None and (message := node_id_problem(node_id)):
        problems.add(join(path, "id"), message)
    return node_id


def _step_node(step: dict, path: str, later_ids: list, problems: Problems) -> Any:
    """The step as a node (the caller validates it); its ``next`` is the following step."""
    node = {key: value for key, value in step.items() if key not in ("id", "next")}
    node.setdefault("type", "task")
    if node["type"] not in STEP_TYPES:
        problems.add(join(path, "type"), f"a saga step's type must be task or async_task, got {node['type']!r}")
        node["type"] = "task"
    if "next" in step:
        problems.add(join(path, "next"), "unknown field 'next': saga steps run in the order listed")
    following = next((node_id for node_id in later_ids if node_id is not None), None)
    if following is not None:
        node["next"] = following
    return node
