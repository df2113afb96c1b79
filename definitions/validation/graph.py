"""Checks on the graph as a whole, run once every node is normalized.

* every node is reachable from ``start`` (through any edge, failure branches included);
* from every node some end node is reachable through the normal flow (``next``,
  switch cases and ``default``), so no cycle traps an execution forever;
* templates and rules that read ``nodes.<id>`` name a real node.
"""

from collections import deque
from typing import Any

from definitions.templating import references
from definitions.validation.nodes import FAILURE_ACTIONS
from definitions.validation.problems import Problems, join

TEMPLATE_FIELDS = ("request", "compensation", "output", "error", "until")


def flow_edges(node: dict) -> list[str]:
    """Where the normal flow can go next (a parallel node continues at ``next`` once its branches end)."""
    edges = [node.get("next"), node.get("default")]
    edges += [case.get("next") for case in node.get("cases") or [] if isinstance(case, dict)]
    return [edge for edge in edges if edge]


def all_edges(node: dict) -> list[str]:
    """Every node this one can lead to: the flow, parallel branches and failure/timeout branches."""
    edges = flow_edges(node) + [branch for branch in node.get("branches") or [] if branch]
    for key in ("on_failure", "on_timeout"):
        if node.get(key) and node[key] not in FAILURE_ACTIONS:
            edges.append(node[key])
    return edges


def is_end(node: dict) -> bool:
    """A node that ends the execution (or, inside a parallel branch, the branch)."""
    return node["type"] != "switch" and node.get("next") is None


def check_structure(start: str, nodes: dict[str, dict], paths: dict[str, str], problems: Problems) -> None:
    """Report unreachable nodes and nodes from which no end can be reached. ``nodes`` holds valid nodes only."""
    reached = _reachable([start], lambda node_id: all_edges(nodes[node_id]) if node_id in nodes else [])
    for node_id in nodes:
        if node_id not in reached:
            problems.add(paths[node_id], f"node '{node_id}' is unreachable: no path from start '{start}' leads to it")
    predecessors: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for node_id, node in nodes.items():
        for target in flow_edges(node):
            predecessors.setdefault(target, []).append(node_id)
    ends = [node_id for node_id, node in nodes.items() if is_end(node)]
    can_end = _reachable(ends, lambda node_id: predecessors.get(node_id, []))
    for node_id in nodes:
        if node_id not in can_end:
            problems.add(paths[node_id], f"node '{node_id}' is in a cycle with no exit: no path from it reaches an end")
    for node_id, node in nodes.items():
        if node["type"] == "parallel" and node.get("branches"):
            _check_branches(node_id, node, nodes, paths, problems)


def _check_branches(fork: str, node: dict, nodes: dict[str, dict], paths: dict[str, str], problems: Problems) -> None:
    """Each branch stays inside its fork: it does not loop back to it, reach what follows the join,
    or share a node with another branch (a branch runs as an execution of its own)."""
    follows_join = _reachable([node["next"]], _edges_in(nodes)) if node.get("next") else set()
    owner: dict[str, str] = {}
    for index, head in enumerate(node["branches"]):
        where = f"{paths[fork]}.branches[{index}]"
        region = _reachable([head], _edges_in(nodes)) if head in nodes else set()
        if fork in region:
            problems.add(where, f"branch '{head}' loops back to its fork '{fork}'")
        escaped = sorted(region & follows_join)
        if escaped:
            problems.add(where, f"branch '{head}' escapes its fork: it reaches '{escaped[0]}', which follows the join")
        shared = sorted(n for n in region if n in owner)
        if shared:
            problems.add(where, f"branch '{head}' shares node '{shared[0]}' with branch '{owner[shared[0]]}'")
        owner.update({n: head for n in region if n not in owner})


def _edges_in(nodes: dict[str, dict]):
    return lambda node_id: all_edges(nodes[node_id]) if node_id in nodes else []


def _reachable(roots: list[str], neighbours) -> set[str]:
    seen, queue = set(roots), deque(roots)
    while queue:
        for target in neighbours(queue.popleft()):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def check_node_references(raw: dict, path: str, node_ids: set[str], problems: Problems, dialect=None) -> None:
    """Report ``{{nodes.<id>...}}`` templates and ``{"var": "nodes.<id>..."}`` rules naming no node."""
    for key in TEMPLATE_FIELDS:
        if key in raw:
            _check_templates(raw[key], join(path, key), node_ids, problems, dialect)
    cases = raw.get("cases")
    for index, case in enumerate(cases if isinstance(cases, list) else []):
        if isinstance(case, dict):
            _check_rule(case.get("when"), f"{path}.cases[{index}].when", node_ids, problems)
    if isinstance(raw.get("callback"), dict):
        for key, rule in raw["callback"].items():
            _check_rule(rule, f"{path}.callback.{key}", node_ids, problems)


def _unknown_node(reference: str, node_ids: set[str]) -> str | None:
    parts = reference.split(".")
    if len(parts) >= 2 and parts[0] == "nodes" and parts[1] not in node_ids:
        return parts[1]
    return None


def _check_templates(value: Any, path: str, node_ids: set[str], problems: Problems, dialect=None) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_templates(item, join(path, key), node_ids, problems, dialect)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_templates(item, f"{path}[{index}]", node_ids, problems, dialect)
    elif isinstance(value, str):
        for reference in references(value, dialect):
            if unknown := _unknown_node(reference, node_ids):
                problems.add(path, f"template '{{{{{reference}}}}}' refers to unknown node '{unknown}'")


def _check_rule(rule: Any, path: str, node_ids: set[str], problems: Problems) -> None:
    """Walk a JSON Logic rule for ``var`` operations reading ``nodes.<id>``."""
    if isinstance(rule, list):
        for index, item in enumerate(rule):
            _check_rule(item, f"{path}[{index}]", node_ids, problems)
    elif isinstance(rule, dict):
        for operator, args in rule.items():
            name = args[0] if operator == "var" and isinstance(args, list) and args else args
            if operator == "var" and isinstance(name, str) and (unknown := _unknown_node(name, node_ids)):
                problems.add(join(path, "var"), f"rule reads 'nodes.{unknown}', an unknown node")
            else:
                _check_rule(args, join(path, str(operator)), node_ids, problems)
