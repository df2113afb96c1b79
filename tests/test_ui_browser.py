"""The UI pages driven in headless Chromium (Debian's `chromium`, through Playwright for Python).

The browser, the logged-in ``page`` and the helpers are in tests/support/browser.py (the fixtures are
registered in tests/conftest.py). Screenshots of every page land in var/screenshots/ (printed at the
end of the run).
"""

import re
import time

import pytest
from playwright.sync_api import expect

from definitions.models import Definition
from definitions.services import store_definition
from executions.models import Execution, Step
from executions.services import start_execution
from tests.support.browser import has_class, node, open_page, set_field, shot, staff_context, wait_valid
from tests.support.definitions import BRANCHING
from tests.support.engine import drive
from tests.support.service import Callback, Reply

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.workers
def test_make_run_serves_the_static_files_of_the_api_docs_the_admin_and_the_editor(browser, make_run):
    """`make run` as a newcomer starts it (runserver, TRAMA_DEBUG off): every page gets its CSS and JavaScript."""
    base_url, _ = make_run()
    anonymous = browser.new_context(base_url=base_url)
    page = open_page(anonymous)
    missing = []  # anything a page asked for and did not get (the browser's own /favicon.ico included)
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    page.goto("/api/docs/")  # Swagger UI renders the schema: its bundle and CSS came from /static/
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Trama API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    page.goto("/admin/login/")
    expect(page.locator("#header")).to_have_css("background-color", "rgb(65, 118, 144)")  # admin/css/base.css
    icon = page.request.get(f"{base_url}/favicon.ico")
    assert (icon.status, icon.headers["content-type"]) == (200, "image/svg+xml")
    assert page.errors == [] and missing == []
    anonymous.close()

    store_definition(BRANCHING)
    staff = staff_context(browser, base_url)
    page = open_page(staff)
    page.goto("/ui/editor/checkout/")  # its script draws the graph and validates it through the API
    expect(page.locator("#editor")).to_have_attribute("data-validity", "valid")
    expect(page.locator(".validity")).to_have_text("valid")  # no longer "checking…"
    expect(page.locator(".node")).to_have_count(len(BRANCHING["nodes"]))
    shot(page, "make-run-editor")
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    for url in ("/", "/ui/executions/", "/ui/definitions/", "/ui/definitions/checkout/"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
    assert page.errors == [] and missing == []
    staff.close()


def test_editor_builds_validates_and_saves_a_definition_that_then_runs(page, live_server, service, settings, api):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    service.script("POST", "/charge", Reply(503, {"error": "busy"}))  # the first attempt fails, the retry succeeds

    page.goto("/ui/editor/")
    page.wait_for_selector("#editor[data-ready=true]")
    page.fill("input[name=name]", "ui-flow")
    page.click('.node[data-id="first"]')
    set_field(page, "request.url", f"{service.url}/reserve")
    page.select_option("select[name=new-type]", "task")
    page.click("[data-action=add]")  # chained after the selected node
    page.wait_for_selector('.node[data-id="task1"].selected')
    set_field(page, "request.url", "not a url")
    page.wait_for_selector('.node[data-id="task1"].has-error')
    expect(page.locator(".errors")).to_contain_text("nodes.task1.request.url")
    shot(page, "editor-error")

    set_field(page, "request.url", f"{service.url}/charge")
    set_field(page, "retry.max_attempts", "2")
    set_field(page, "retry.backoff_s", "0.3")
    wait_valid(page)
    expect(page.locator(".node.has-error")).to_have_count(0)
    page.click("[data-action=save]")
    page.wait_for_selector(".save-msg.good")
    stored = Definition.objects.get(name="ui-flow")
    assert stored.version == 1 and stored.created_by == "ops"
    assert stored.spec["nodes"]["first"]["next"] == "task1"
    assert stored.spec["nodes"]["task1"]["retry"]["max_attempts"] == 2
    shot(page, "editor-saved")

    started = api.post("/api/v1/executions/", {"definition": "ui-flow", "input": {"orderId": 7}}, format="json")
    assert started.status_code == 202
    execution = Execution.objects.get(pk=started.json()["id"])
    page.goto(f"/ui/executions/{execution.pk}/")  # opened while PENDING: it refreshes itself
    page.wait_for_selector("#execution[data-ready=true]")
    assert drive(execution).status == "SUCCEEDED"
    page.wait_for_selector("#execution[data-status=SUCCEEDED]")
    assert execution.steps.count() == 3
    expect(page.locator(".bar.attempt")).to_have_count(3)
    expect(page.locator('.tl-row[data-node="task1"] .bar.attempt')).to_have_count(2)
    expect(page.locator('.tl-row[data-node="task1"] .bar.status-failed')).to_have_count(1)
    expect(page.locator('.tl-row[data-node="task1"] .bar.kind-backoff')).to_have_count(1)
    expect(page.locator(".edge.taken")).to_have_count(1)

    page.hover('.tl-row[data-node="task1"] .bar.status-failed')
    expect(page.locator(".tooltip")).to_contain_text("← 503")
    page.click('.tl-row[data-node="task1"] .bar.status-succeeded')
    expect(page.locator(".step-detail")).to_contain_text(f"{service.url}/charge")
    expect(page.locator(".step-detail")).to_contain_text(re.compile("response 200", re.IGNORECASE))
    shot(page, "timeline-succeeded")


def compensating_definition(url: str) -> Definition:
    return store_definition(
        {
            "name": "ui-comp",
            "kind": "graph",
            "start": "reserve",
            "nodes": {
                "reserve": {
                    "type": "task",
                    "request": {"method": "POST", "url": f"{url}/reserve"},
                    "compensation": {
                        "method": "DELETE",
                        "url": f"{url}/reserve/{{{{nodes.reserve.response.body.id}}}}",
                    },
                    "next": "cool",
                },
                "cool": {"type": "sleep", "duration_s": 0.3, "next": "charge"},
                "charge": {
                    "type": "task",
                    "request": {"method": "POST", "url": f"{url}/charge"},
                    "retry": {"max_attempts": 2, "backoff_s": 0.2},
                    "next": "ship",
                },
                "ship": {"type": "task", "request": {"method": "POST", "url": f"{url}/ship"}},
            },
        }
    )


def test_timeline_of_a_compensated_execution_shows_sleep_failures_and_compensation(page, service, settings):
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    service.default("POST", "/reserve", Reply(200, {"id": "r-1"}))
    service.default("POST", "/charge", Reply(500, {"error": "card declined"}))
    execution, _ = start_execution(compensating_definition(service.url), {"orderId": 9})
    assert drive(execution).status == "COMPENSATED"

    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-status=COMPENSATED]")
    assert execution.steps.count() == 5  # reserve, cool, charge x2, undo
    expect(page.locator(".bar.attempt")).to_have_count(5)
    expect(page.locator(".bar.phase-compensation")).to_have_count(1)
    expect(page.locator('.tl-row[data-node="cool"] .bar.kind-sleep')).to_have_count(1)
    expect(page.locator(".bar.status-failed")).to_have_count(2)
    expect(node(page, "reserve")).to_have_class(has_class("compensated"))
    expect(node(page, "ship")).not_to_have_class(has_class("visited"))
    expect(page.locator(".io-error").first).to_contain_text("HTTP 500")
    page.click(".bar.phase-compensation")
    expect(page.locator(".step-detail")).to_contain_text("/reserve/r-1")
    shot(page, "timeline-compensated")


def test_editor_draws_a_stored_graph_and_tries_a_switch_rule(page):
    store_definition(BRANCHING)
    page.goto("/ui/editor/checkout/")
    page.wait_for_selector("#editor[data-validity=valid]")
    expect(page.locator(".node")).to_have_count(len(BRANCHING["nodes"]))
    expect(page.locator(".edge")).to_have_count(8)
    page.click('.node[data-id="route"]')
    page.fill('.panel [data-field="sample"]', '{"payload": {"method": "pix"}}')
    page.click('.panel [data-try="0"]')
    expect(page.locator('.try-result[data-case="0"]')).to_have_text("→ true")
    expect(page.locator('.try-result[data-case="0"]')).to_have_class(has_class("truthy"))
    shot(page, "editor-graph")

    page.click('.node[data-id="cool"]')
    page.click("[data-action=delete]")
    wait_valid(page)  # the reference to it went too: card now ends the execution
    expect(node(page, "cool")).to_have_count(0)

    port = page.locator('.node[data-id="card"] .port').bounding_box()
    target = page.locator('.node[data-id="ship"] .node-box').bounding_box()
    page.mouse.move(port["x"] + port["width"] / 2, port["y"] + port["height"] / 2)
    page.mouse.down()
    page.mouse.move(target["x"] + 20, target["y"] + 20, steps=5)
    page.mouse.up()  # dragged from card's port onto ship: card.next = ship
    page.wait_for_selector('.edge[data-from="card"][data-to="ship"]', state="attached")
    wait_valid(page)


def test_editor_stays_responsive_with_200_nodes(page):
    steps = [{"id": f"s{i}", "request": {"method": "POST", "url": f"http://svc.local/{i}"}} for i in range(200)]
    store_definition({"name": "big-saga", "kind": "saga", "steps": steps})
    started = time.monotonic()
    page.goto("/ui/editor/big-saga/")
    page.wait_for_selector("#editor[data-validity=valid]")
    expect(page.locator(".node")).to_have_count(200)
    loaded = time.monotonic() - started
    page.click("[data-action=fit]")
    page.click('.node[data-id="s0"]')
    edit_ms = page.evaluate(
        """() => new Promise((done) => {
             const input = document.querySelector('.panel [data-field="request.url"]');
             const t0 = performance.now();
             input.value = "http://svc.local/edited";
             input.dispatchEvent(new Event("input"));
             requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - t0)));
           })"""
    )
    expect(page.locator('.node[data-id="s0"] .node-sub')).to_contain_text("svc.local/edited")
    wait_valid(page)
    # Speed is measured, not asserted (the suite has no timed assertions): printed for the run's log.
    print(f"editor, 200 nodes: loaded in {loaded:.2f} s, one edit redrawn in {edit_ms:.0f} ms")
    page.click("[data-action=save]")
    page.wait_for_selector(".save-msg.good")
    assert Definition.objects.get(name="big-saga", version=2).kind == "saga"  # still a chain: stays a saga
    shot(page, "editor-200-nodes")


def test_timeline_shows_parallel_branches_side_by_side(page, live_server, service, settings):
    from tests.test_parallel import drive_all, fork_graph

    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    settings.TRAMA_PUBLIC_URL = live_server.url  # the async branch's callback comes back to this server
    service.script("POST", "/pay", Reply(202, callback=Callback({"ok": True}, delay_s=0.1)))
    execution, _ = start_execution(store_definition(fork_graph(service.url)), {})
    started = time.monotonic()
    assert drive_all(execution).status == "SUCCEEDED"
    print(f"parallel execution driven in {time.monotonic() - started:.2f} s")
    total_steps = Step.objects.filter(execution__in=[execution, *execution.branches.all()]).count()

    page.goto(f"/ui/executions/{execution.pk}/")
    page.wait_for_selector("#execution[data-status=SUCCEEDED]")
    expect(page.locator(".tl-row[data-node]")).to_have_count(7)
    rows = page.eval_on_selector_all(".tl-row[data-node]", "rows => rows.map(r => [r.dataset.node, r.dataset.branch])")
    # The branches' rows sit under the fork's row, in the order of its branches, before the join's next node.
    assert rows == [
        ["reserve", ""], ["fork", ""], ["email", "email"], ["pay", "pay"], ["wait", "wait"], ["audit", "wait"],
        ["ship", ""],
    ]  # fmt: skip
    for node_id, branch in rows[2:6]:
        row = page.locator(f'.tl-row[data-node="{node_id}"]')
        expect(row.locator(".bar.attempt")).to_have_count(1)
        expect(row.locator(".branch-tag")).to_have_text(branch)  # the branch is named in the label
        expect(row).to_have_class(has_class("tl-branch"))
    assert total_steps == 7
    expect(page.locator(".bar.attempt")).to_have_count(7)
    expect(page.locator('.tl-row[data-node="pay"] .bar.kind-wait')).to_have_count(1)
    expect(page.locator('.tl-row[data-node="wait"] .bar.kind-sleep')).to_have_count(1)
    expect(page.locator('.tl-row[data-node="fork"] .bar.kind-fork')).to_have_count(1)
    for head in ("email", "pay", "wait"):
        expect(page.locator(f'.edge.taken[data-from="fork"][data-to="{head}"]')).to_have_count(1)
    expect(page.locator(".edge.taken")).to_have_count(6)  # reserve>fork, fork>3 heads, wait>audit, fork>ship
    page.click('.tl-row[data-node="audit"] .bar.attempt')
    expect(page.locator(".step-detail")).to_contain_text("branch")
    expect(page.locator(".step-detail")).to_contain_text(f"{service.url}/audit")
    shot(page, "timeline-parallel")


def checkout(url: str, version: int = 1) -> dict:
    """The SPEC 2.2 checkout flow (cool wired in after card), its services at ``url``; version 2 drops the
    sleep, adds a receipt after shipping and retries shipping."""
    nodes = {
        "reserve": {"type": "task", "request": {"method": "POST", "url": f"{url}/reserve",
                                                "body": {"order": "{{payload.orderId}}"}},
                    "compensation": {"method": "DELETE", "url": url + "/reserve/{{nodes.reserve.response.body.id}}"},
                    "next": "route"},
        "route": {"type": "switch", "default": "card",
                  "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}]},
        "pix": {"type": "async_task", "request": {"method": "POST", "url": f"{url}/pix"}, "timeout_s": 900,
                "next": "ship"},
        "card": {"type": "task", "request": {"method": "POST", "url": f"{url}/card"}, "next": "cool"},
        "cool": {"type": "sleep", "duration_s": 30, "next": "ship"},
        "ship": {"type": "task", "request": {"method": "POST", "url": f"{url}/ship",
                                             "body": {"paidWith": "{{payload.method}}"}}},
    }  # fmt: skip
    if version == 2:
        del nodes["cool"]
        nodes["card"]["next"] = "ship"
        nodes["ship"] |= {"retry": {"max_attempts": 3}, "next": "receipt"}
        nodes["receipt"] = {"type": "task", "request": {"method": "POST", "url": f"{url}/receipt"}}
    return {"name": "checkout", "kind": "graph", "start": "reserve", "nodes": nodes}


def sim_classes(page) -> dict[str, str]:
    return dict(page.eval_on_selector_all(".node", "ns => ns.map(n => [n.dataset.id, n.getAttribute('class')])"))


def visited(page) -> set[str]:
    return {node_id for node_id, cls in sim_classes(page).items() if "sim-visited" in cls.split()}


def test_editor_simulates_both_switch_branches_then_compares_two_versions(page, service):
    store_definition(checkout(service.url))
    store_definition(checkout(service.url, version=2))
    page.goto("/ui/editor/checkout/1/")
    wait_valid(page)
    page.click(".panel-tabs [data-tab=simulate]")

    # pix: played back node by node to the end.
    page.fill('[data-field="sim-input"]', '{"orderId": "A-1", "method": "pix"}')
    page.fill('[data-field="sim-mocks"]', '{"reserve": {"status": 201, "body": {"id": "r-7"}}}')
    started = time.monotonic()
    page.click("[data-action=play]")
    page.wait_for_selector("#editor[data-sim=playing]")
    page.wait_for_selector("#editor[data-sim=done]")
    print(f"simulation played back (4 stops) in {time.monotonic() - started:.2f} s")
    editor, step = page.locator("#editor"), page.locator(".sim-step").first
    expect(editor).to_have_attribute("data-sim-node", "ship")
    expect(page.locator(".node.sim-visited")).to_have_count(4)
    assert visited(page) == {"reserve", "route", "pix", "ship"}
    expect(node(page, "ship")).to_have_class(has_class("sim-current"))
    expect(page.locator(".edge.taken")).to_have_count(3)
    expect(page.locator(".sim-result")).to_contain_text("SUCCEEDED")
    expect(step).to_contain_text("paidWith")
    expect(step).to_contain_text(f"POST {service.url}/ship")
    page.click("[data-action=sim-prev]")  # back one node: pix, its rendered request and mocked 202
    expect(editor).to_have_attribute("data-sim-node", "pix")
    expect(node(page, "pix")).to_have_class(has_class("sim-current"))
    expect(node(page, "ship")).not_to_have_class(has_class("sim-current"))
    expect(step).to_contain_text(f"POST {service.url}/pix")
    expect(step).to_contain_text("202")
    page.click('.node[data-id="reserve"]')  # a visited node on the graph: the playback jumps there
    expect(editor).to_have_attribute("data-sim-node", "reserve")
    expect(step).to_contain_text('"r-7"')
    page.click("[data-action=sim-next]")
    expect(editor).to_have_attribute("data-sim-node", "route")
    shot(page, "editor-simulate-pix")

    # card, with shipping failing: the other branch, then the compensation of reserve.
    page.fill('[data-field="sim-input"]', '{"orderId": "A-2", "method": "card"}')
    page.fill('[data-field="sim-mocks"]', '{"reserve": {"body": {"id": "r-8"}}, "ship": {"status": 500}}')
    page.click("[data-action=play]")
    page.wait_for_selector("#editor[data-sim=playing]")
    page.click(".sim-stops li:last-child")  # jump to the end (pauses the player)
    expect(editor).to_have_attribute("data-sim", "done")
    expect(page.locator(".node.sim-visited")).to_have_count(5)
    assert visited(page) == {"reserve", "route", "card", "cool", "ship"}
    expect(node(page, "ship")).to_have_class(has_class("sim-failed"))
    expect(node(page, "reserve")).to_have_class(has_class("sim-compensated"))
    expect(page.locator(".sim-result")).to_contain_text("COMPENSATED")
    expect(step).to_contain_text(f"DELETE {service.url}/reserve/r-8")
    shot(page, "editor-simulate-card")
    # A dry run: no execution, no request.
    assert Execution.objects.count() == 0 and service.calls() == []

    # Compare v1 and v2 side by side.
    page.click("[data-action=compare]")
    page.wait_for_selector("#diff[data-loaded='1-2']")
    expect(page).to_have_url(re.compile(r"/ui/definitions/checkout/diff/1/2/$"))
    expect(page.locator(".side-to .node.diff-added")).to_have_count(1)
    expect(page.locator('.side-to .node.diff-added[data-id="receipt"]')).to_have_count(1)
    expect(page.locator('.side-from .node.diff-removed[data-id="cool"]')).to_have_count(1)
    expect(page.locator(".side-to .node.diff-changed")).to_have_count(2)
    changed = {page.locator(".side-to .node.diff-changed").nth(i).get_attribute("data-id") for i in range(2)}
    assert changed == {"card", "ship"}
    table = page.inner_text(".diff-table")
    assert "ship.retry.max_attempts" in page.eval_on_selector_all(".field-row", "rs => rs.map(r => r.dataset.field)")
    assert "card.next" in page.eval_on_selector_all(".field-row", "rs => rs.map(r => r.dataset.field)")
    assert "removed" in table and "added" in table
    shot(page, "diff-versions")
    page.click("[data-action=swap]")
    page.wait_for_selector("#diff[data-loaded='2-1']")
    expect(page.locator('.side-from .node.diff-removed[data-id="receipt"]')).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/ui/definitions/checkout/diff/2/1/$"))
