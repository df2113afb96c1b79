"""Graphs that stay readable, in headless Chromium: parallel blocks drawn as containers with their join,
top-down and left-right layouts, a minimap and Fit at 200 nodes, and nodes moved by hand that every page
then draws where they were put (the definition's ``editor`` block).

Geometry is read from the page as the browser laid it out (bounding boxes on the screen), so these
tests check what an operator sees, not what the layout code meant.
"""

import pytest
from playwright.sync_api import expect

from definitions.models import Definition
from definitions.services import store_definition
from executions.services import start_execution
from tests.support.browser import has_class, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def task(next_id: str | None = None) -> dict:
    node = {"type": "task", "request": {"method": "POST", "url": "http://svc.local/x"}}
    return {**node, "next": next_id} if next_id else node


FANOUT = {
    "name": "fanout",
    "kind": "graph",
    "start": "reserve",
    "nodes": {
        "reserve": task("notify"),
        "notify": {"type": "parallel", "branches": ["email", "sms", "audit"], "next": "ship"},
        "email": task("email_log"),
        "email_log": {"type": "succeed"},
        "sms": {"type": "succeed"},
        "audit": task(),
        "ship": task(),
    },
}
BLOCK = ["notify", "email", "email_log", "sms", "audit"]


def box(page, selector: str) -> dict:
    return page.locator(selector).bounding_box()


def node_box(page, node_id: str, scope: str = "") -> dict:
    return box(page, f'{scope} .node[data-id="{node_id}"] .node-box'.strip())


def contains(outer: dict, inner: dict) -> bool:
    return (
        outer["x"] <= inner["x"]
        and outer["y"] <= inner["y"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def test_a_parallel_block_is_a_container_with_its_join_and_the_next_node_after_it_in_both_directions(page):
    store_definition(FANOUT)
    page.goto("/ui/definitions/fanout/")
    page.wait_for_selector("#definition[data-ready=true]")
    container = box(page, '.block[data-block="notify"] .block-box')
    for node_id in BLOCK:
        assert contains(container, node_box(page, node_id)), node_id
    for node_id in ("reserve", "ship"):
        assert not contains(container, node_box(page, node_id)), node_id
    join = box(page, '.block[data-block="notify"] .join-bar')
    ship = node_box(page, "ship")
    assert join["y"] >= container["y"] + container["height"] - join["height"] - 1  # on the container's bottom edge
    assert ship["y"] > join["y"]  # the node after the fork is drawn after the join
    expect(page.locator(".block-label")).to_have_text("parallel notify · join")
    shot(page, "graph-parallel-block-top-down")

    page.select_option("select.direction", "LR")
    reserve, ship = node_box(page, "reserve"), node_box(page, "ship")
    container = box(page, '.block[data-block="notify"] .block-box')
    for node_id in BLOCK:
        assert contains(container, node_box(page, node_id)), node_id
    assert reserve["x"] + reserve["width"] <= container["x"] < container["x"] + container["width"] <= ship["x"]
    # Left-right: the branches stack in one column, the edges run rightwards.
    email, sms, audit = (node_box(page, n) for n in ("email", "sms", "audit"))
    assert email["x"] == sms["x"] == audit["x"]
    assert len({email["y"], sms["y"], audit["y"]}) == 3
    shot(page, "graph-parallel-block-left-right")


def test_fit_shows_all_200_nodes_and_the_minimap_moves_the_view(page):
    nodes = {f"n{i}": task(f"n{i + 1}") for i in range(199)}
    nodes["n199"] = {"type": "succeed"}
    for i in range(0, 190, 10):  # a switch every ten nodes, skipping ahead: edges around the nodes between
        nodes[f"n{i}"] = {"type": "switch", "cases": [{"when": True, "next": f"n{i + 1}"}], "default": f"n{i + 5}"}
    store_definition({"name": "long", "kind": "graph", "start": "n0", "nodes": nodes})
    page.goto("/ui/definitions/long/")
    page.wait_for_selector("#definition[data-ready=true]")
    frame = box(page, "svg.def-graph")
    minimap = page.locator("svg.minimap")
    expect(minimap).to_be_visible()  # opened at a readable scale: the graph does not fit, the overview is there
    expect(page.locator('.node[data-id="n199"]')).not_to_be_in_viewport()

    # A click on the minimap where it draws the last node brings that node into the frame.
    target = page.evaluate(
        """() => {
             const node = document.querySelector('.node[data-id="n199"]');
             const [x, y] = node.getAttribute("transform").match(/[-\\d.]+/g).map(Number);
             const mini = document.querySelector("svg.minimap");
             const point = new DOMPoint(x + 84, y + 24).matrixTransform(mini.getScreenCTM());
             return { x: point.x, y: point.y };
           }"""
    )
    page.mouse.click(target["x"], target["y"])
    last = node_box(page, "n199")
    assert frame["y"] <= last["y"] and last["y"] + last["height"] <= frame["y"] + frame["height"]

    page.click("[data-action=fit]")
    for node_id in ("n0", "n57", "n123", "n199"):
        assert contains(frame, node_box(page, node_id)), node_id
    expect(minimap).to_be_hidden()  # everything is in view: no overview needed
    expect(page.locator("svg.def-graph")).to_have_class(has_class("zoomed-far"))

    # A double click zooms in where it lands.
    transform = page.locator("svg.def-graph g.viewport").get_attribute("transform")
    page.mouse.dblclick(frame["x"] + 20, frame["y"] + frame["height"] / 2)  # the background beside the column
    expect(page.locator("svg.def-graph g.viewport")).not_to_have_attribute("transform", transform)


def drag(page, node_id: str, dx: float, dy: float) -> None:
    start = node_box(page, node_id)
    x, y = start["x"] + 30, start["y"] + start["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx / 2, y + dy / 2, steps=5)
    page.mouse.move(x + dx, y + dy, steps=5)
    page.mouse.up()


def test_a_node_moved_by_hand_is_saved_and_drawn_there_by_every_page(page, settings):
    store_definition(FANOUT)
    page.goto("/ui/editor/fanout/")
    page.wait_for_selector("#editor[data-validity=valid]")
    expect(page.locator("[data-action=tidy]")).to_be_disabled()
    before = node_box(page, "sms")
    container_before = box(page, '.block[data-block="notify"] .block-box')
    drag(page, "sms", 260, 140)
    after = node_box(page, "sms")
    assert abs(after["x"] - before["x"] - 260) < 2 and abs(after["y"] - before["y"] - 140) < 2
    expect(page.locator(".node.selected")).to_have_count(0)  # a drag is not a click
    container = box(page, '.block[data-block="notify"] .block-box')
    assert contains(container, after) and container["height"] > container_before["height"]  # the block follows

    # The move is an edit: undo puts the node back, redo moves it again.
    expect(page.locator("#editor")).to_have_attribute("data-dirty", "true")
    page.keyboard.press("Control+z")
    expect(page.locator('.node[data-id="sms"]')).to_have_attribute("transform", f"translate({before_attr(page)})")
    page.keyboard.press("Control+Shift+z")
    moved_attr = page.locator('.node[data-id="sms"]').get_attribute("transform")
    assert moved_attr != f"translate({before_attr(page)})"

    page.click("[data-action=save]")
    page.wait_for_selector(".save-msg.good")
    saved = Definition.objects.get(name="fanout", version=2)
    x, y = saved.editor_drawing["positions"]["sms"]
    assert moved_attr == f"translate({x},{y})"
    assert saved.digest == Definition.objects.get(name="fanout", version=1).digest  # same spec: only the drawing

    # The definition page and an execution of that version draw it where it was put.
    page.goto("/ui/definitions/fanout/2/")
    page.wait_for_selector("#definition[data-ready=true]")
    expect(page.locator('.node[data-id="sms"]')).to_have_attribute("transform", f"translate({x},{y})")
    execution, _ = start_execution(saved, {})
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    expect(page.locator('.exec-graph .node[data-id="sms"]')).to_have_attribute("transform", f"translate({x},{y})")
    # Another direction is a view of its own: the automatic layout, the positions left alone.
    page.select_option("select.direction", "LR")
    expect(page.locator('.exec-graph .node[data-id="sms"]')).not_to_have_attribute("transform", f"translate({x},{y})")

    # Tidy up forgets the positions; switching direction in the editor is saved with the version.
    page.goto("/ui/editor/fanout/")
    page.wait_for_selector("#editor[data-validity=valid]")
    page.click("[data-action=tidy]")
    expect(page.locator('.node[data-id="sms"]')).to_have_attribute("transform", f"translate({before_attr(page)})")
    page.select_option("#editor select.direction", "LR")
    page.click("[data-action=save]")
    page.wait_for_selector(".save-msg.good")
    assert Definition.objects.get(name="fanout", version=3).editor_drawing == {"direction": "LR"}
    page.goto("/ui/definitions/fanout/")
    page.wait_for_selector("#definition[data-ready=true]")
    expect(page.locator("select.direction")).to_have_value("LR")
    reserve, ship = node_box(page, "reserve"), node_box(page, "ship")
    assert reserve["x"] < ship["x"] and abs(reserve["y"] - ship["y"]) < 1


def before_attr(page) -> str:
    """Where the automatic top-down layout puts ``sms`` (read from the layout module in the page)."""
    return page.evaluate(
        """async (spec) => {
             const { layeredLayout } = await import("/static/graph_editor/js/layout.js");
             const p = layeredLayout(spec.nodes, spec.start).pos.sms;
             return `${p.x},${p.y}`;
           }""",
        FANOUT,
    )
