"""The execution timeline in headless Chromium: idle time compressed, zoom and pan, durations, now, legend, glyphs.

The histories are written as the engine writes them (Step rows with their instants), so a day-long
wait needs no day of waiting; the page reads nothing else.
"""

import re
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from definitions.services import store_definition
from executions.models import Execution, OperatorAction, Step
from tests.support.browser import has_class, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_RUN = {
    "name": "slow-order",
    "kind": "graph",
    "start": "reserve",
    "nodes": {
        "reserve": {"type": "task", "request": {"method": "POST", "url": "http://inv.local/r"}, "next": "cool",
                    "compensation": {"method": "DELETE", "url": "http://inv.local/r/1"}},
        "cool": {"type": "sleep", "duration_s": 600, "next": "pix"},
        "pix": {"type": "async_task", "request": {"method": "POST", "url": "http://pay.local/pix"}, "timeout_s": 172800,
                "next": "charge", "compensation": {"method": "POST", "url": "http://pay.local/refund"}},
        "charge": {"type": "task", "request": {"method": "POST", "url": "http://pay.local/charge"},
                   "retry": {"max_attempts": 2, "backoff_s": 1}},
    },
}  # fmt: skip


def record(execution, rows):
    """Steps of ``execution`` from (node, type, phase, attempt, status, start offset s, duration s or None)."""
    t0 = execution.started_at
    for seq, (node_id, node_type, phase, attempt, status, at, took) in enumerate(rows, start=1):
        Step.objects.create(
            execution=execution, seq=seq, node_id=node_id, node_type=node_type, phase=phase, attempt=attempt,
            status=status, started_at=t0 + timedelta(seconds=at),
            finished_at=None if took is None else t0 + timedelta(seconds=at + took),
        )  # fmt: skip


def long_execution():
    """Reserve, a 10-minute sleep, a day-long wait, two failed charges, a skipped refund, reserve compensated."""
    definition = store_definition(LONG_RUN)
    day = 86400
    started = timezone.now() - timedelta(days=2)
    execution = Execution.objects.create(
        definition=definition, status="COMPENSATED", input={"orderId": "A-17"}, started_at=started,
        finished_at=started + timedelta(seconds=600.2 + day + 3.1),
    )  # fmt: skip
    record(
        execution,
        [
            ("reserve", "task", "forward", 1, "succeeded", 0, 0.2),
            ("cool", "sleep", "forward", 1, "succeeded", 0.2, 600),
            ("pix", "async_task", "forward", 1, "succeeded", 600.2, day),
            ("charge", "task", "forward", 1, "failed", 600.2 + day, 0.3),
            ("charge", "task", "forward", 2, "failed", 600.2 + day + 1.3, 0.4),
            ("pix", "async_task", "compensation", 1, "failed", 600.2 + day + 1.8, 0.5),
            ("reserve", "task", "compensation", 1, "succeeded", 600.2 + day + 2.6, 0.5),
        ],
    )
    return execution


def bar_left(page, selector: str) -> float:
    return page.eval_on_selector(selector, "el => el.getBoundingClientRect().left")


def test_idle_time_is_compressed_and_marked_and_bars_carry_their_durations(page):
    execution = long_execution()
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    timeline = page.locator(".timeline")
    expect(timeline).to_have_attribute("data-gaps", "2")  # the sleep and the wait, not the 1 s back-off
    labels = page.locator(".tl-gap-label")
    expect(labels.nth(0)).to_have_text("≈ 10 min")
    expect(labels.nth(1)).to_have_text("≈ 1 d")
    expect(labels.nth(1)).to_have_attribute("title", "24 h 0 min idle, compressed")
    # Without compression the 0.2 s reserve bar would be 0.0002 % of the axis; compressed, it is visible.
    reserve = page.locator('.tl-row[data-node="reserve"] .bar.phase-forward')
    assert reserve.bounding_box()["width"] > 20
    expect(reserve).to_contain_text("#1 · 200 ms")
    expect(page.locator('.tl-row[data-node="cool"] .bar.kind-sleep')).to_contain_text("10 min 0 s")
    expect(page.locator('.tl-row[data-node="charge"] .bar.status-failed').first).to_contain_text("✕ · 300 ms")
    expect(page.locator('.tl-row[data-node="charge"] .bar.kind-backoff')).to_have_count(1)
    # Ticks read as time since the start, the idle stretches included.
    expect(page.locator(".tick").last).to_contain_text("24 h 10 min")
    # The refund failed for good and the run went on: an operator skipped it.
    skipped = page.locator(".bar.skipped")
    expect(skipped).to_have_count(1)
    expect(skipped).to_contain_text("↶ #1 ↷ skipped")
    expect(page.locator(".now-line")).to_have_count(0)  # final: no now line
    shot(page, "timeline-idle-compressed")


def test_zoom_and_pan_on_the_time_axis(page):
    execution = long_execution()
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    root = page.locator("#execution")
    expect(root).to_have_attribute("data-zoom", "1.00")
    bar = '.tl-row[data-node="charge"] .bar.attempt >> nth=1'
    before = bar_left(page, bar)
    page.click("[data-zoom=in]")
    expect(root).to_have_attribute("data-zoom", "2.00")
    expect(page.locator(".tl-zoom-level")).to_have_text("\u00d72.0")  # times two
    page.click("[data-zoom=in]")
    expect(root).to_have_attribute("data-zoom", "4.00")
    page.click("[data-zoom=later]")
    page.click("[data-zoom=later]")
    assert bar_left(page, bar) != before
    # Ctrl + wheel zooms at the pointer; a plain wheel scrolls the page and leaves the axis alone.
    track = page.locator('.tl-row[data-node="charge"] .tl-track')
    box = track.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + 10)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    expect(root).not_to_have_attribute("data-zoom", "4.00")
    zoomed = root.get_attribute("data-zoom")
    assert float(zoomed) > 4
    page.mouse.wheel(0, 200)
    expect(root).to_have_attribute("data-zoom", zoomed)
    # Dragging the track to the right shows earlier times; the drag is not a click on a bar.
    left = bar_left(page, bar)
    box = track.bounding_box()  # the plain wheel scrolled the page
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 10, steps=5)
    page.mouse.up()
    assert bar_left(page, bar) > left, page.errors
    expect(page.locator(".bar.selected")).to_have_count(0)
    page.click("[data-zoom=all]")
    expect(root).to_have_attribute("data-zoom", "1.00")
    assert abs(bar_left(page, bar) - before) < 1
    shot(page, "timeline-zoomed")


def test_a_running_execution_has_a_now_line_that_its_open_step_reaches(page):
    definition = store_definition(LONG_RUN)
    started = timezone.now() - timedelta(seconds=20)
    execution = Execution.objects.create(
        definition=definition, status="WAITING", current_node="pix", started_at=started, input={}
    )
    record(
        execution,
        [
            ("reserve", "task", "forward", 1, "succeeded", 0, 0.2),
            ("cool", "sleep", "forward", 1, "succeeded", 0.2, 10),
            ("pix", "async_task", "forward", 1, "waiting", 10.2, None),
        ],
    )
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    now_line = page.locator('.tl-row[data-node="pix"] .now-line')
    expect(now_line).to_have_count(1)
    expect(page.locator(".tl-axis .now-label")).to_have_text("now")
    wait = page.locator('.tl-row[data-node="pix"] .bar.kind-wait.open')
    expect(wait).to_contain_text("…")
    # Both measured in one go: the page redraws the timeline every second while the run is not final.
    right, line = page.evaluate(
        """() => [document.querySelector('.tl-row[data-node="pix"] .bar.kind-wait.open').getBoundingClientRect().right,
                  document.querySelector('.tl-row[data-node="pix"] .now-line').getBoundingClientRect().left]"""
    )
    assert abs(right - line) < 4
    shot(page, "timeline-running")


def test_the_legend_names_every_bar_kind_in_glyphs_the_installed_fonts_have(page):
    execution = long_execution()
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    legend = page.locator(".legend .key")
    names = [text.lower() for text in legend.all_inner_texts()]
    for kind in ["forward", "compensation", "notify", "failed", "timed out", "cancelled", "skipped", "waiting",
                 "sleeping", "back-off", "parallel", "running", "idle", "now"]:  # fmt: skip
        assert any(kind in name for name in names), f"no legend entry for {kind}: {names}"
    text = page.locator(".legend").inner_text() + page.locator(".timeline").inner_text()
    text += "".join(page.locator(".node-icon").all_text_contents())
    text += "".join(page.locator(".tl-controls").all_inner_texts())
    missing = [ch for ch in sorted(set(re.sub(r"[\x00-\x7f]", "", text))) if not has_glyph(ch)]
    assert missing == [], f"no installed font draws {missing} (tofu boxes in Chromium)"


def has_glyph(ch: str) -> bool:
    """Whether fontconfig knows a font with ``ch`` (Chromium on Debian draws with fontconfig's fonts)."""
    found = subprocess.run(["fc-list", f":charset={ord(ch):x}", "family"], capture_output=True, text=True, check=True)
    return bool(found.stdout.strip())


def test_the_wheel_scrolls_the_page_over_the_graph_and_zooms_it_with_ctrl(page):
    execution = long_execution()
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    graph = page.locator("svg.exec-graph")
    graph.scroll_into_view_if_needed()
    transform = page.locator("svg.exec-graph g.viewport").get_attribute("transform")
    box = graph.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40)
    scrolled = page.evaluate("() => window.scrollY")
    page.mouse.wheel(0, 300)
    page.wait_for_function("y => window.scrollY > y", arg=scrolled)
    assert page.locator("svg.exec-graph g.viewport").get_attribute("transform") == transform
    page.keyboard.down("Control")
    page.mouse.wheel(0, -200)
    page.keyboard.up("Control")
    expect(page.locator("svg.exec-graph g.viewport")).not_to_have_attribute("transform", transform)


def test_operator_marks_follow_zoom_and_pan_and_link_both_ways_with_the_history(page):
    execution = long_execution()
    t0 = execution.started_at
    wake, retry, _ = (
        OperatorAction.objects.create(execution=execution, kind=kind, actor="ana", at=t0 + timedelta(seconds=at))
        for kind, at in [("wake", 300), ("retry_skip", 600.2 + 86400 + 2.3), ("rerun", 86400 * 1.5)]
    )
    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-ready=true]")
    marks = page.locator(".tl-operator .bar.kind-operator")
    expect(marks).to_have_count(3)
    expect(marks.nth(2)).to_have_class(has_class("at-end"))  # the re-run, after the end: its label left of its ◆
    label = page.eval_on_selector_all(
        ".tl-operator .bar.kind-operator",
        "els => els.map(e => [e.getBoundingClientRect().right, e.parentElement.getBoundingClientRect().right])",
    )
    assert all(right <= track + 1 for right, track in label), label  # no label clipped by the track
    # Zoomed in on the end of the run: the wake, long before, is not pinned to the window's left edge.
    for _ in range(3):
        page.click("[data-zoom=in]")
    page.click("[data-zoom=later]")
    wake = page.locator(f'.tl-operator .bar[data-step="op:{wake.pk}"]')
    expect(wake).to_be_hidden()
    # Its history row brings it into the window (zoom kept) and marks it.
    zoom = page.get_attribute("#execution", "data-zoom")
    page.locator("tr.ev-operator", has_text="wake").click()
    expect(wake).to_be_visible()
    expect(wake).to_have_class(has_class("selected"))
    assert page.get_attribute("#execution", "data-zoom") == zoom
    box, track = wake.bounding_box(), page.locator(".tl-operator .tl-track").bounding_box()
    assert track["x"] <= box["x"] <= track["x"] + track["width"]
    # A ◆ marks its row; a row marks its bar, and scrolling to it never shifts a (clipped) track off the axis.
    page.click("[data-zoom=all]")
    page.click(f'.tl-operator .bar[data-step="op:{retry.pk}"]')
    expect(page.locator("tr.ev.selected")).to_contain_text("retry, skipping the compensation that failed by ana")
    for _ in range(3):
        page.click("[data-zoom=in]")
    page.click("[data-zoom=later]")
    page.locator("tr.ev", has_text="task charge attempt 2").click()
    expect(page.locator('.tl-row[data-node="charge"] .bar.selected')).to_have_count(1)
    shifted = page.eval_on_selector_all(".timeline, .tl-track", "els => els.map(e => e.scrollLeft)")
    assert not any(shifted), shifted
    # Zoom and pan over the operator row.
    page.click("[data-zoom=all]")
    track = page.locator(".tl-operator .tl-track")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 10)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -300)
    page.keyboard.up("Control")
    expect(page.locator("#execution")).not_to_have_attribute("data-zoom", "1.00")
    charge = page.locator('.tl-row[data-node="charge"] .bar').first
    left = charge.evaluate("e => e.style.left")
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 10, steps=5)
    page.mouse.up()
    assert charge.evaluate("e => e.style.left") != left
    shot(page, "timeline-operator-marks")
