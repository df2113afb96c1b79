"""The graph editor's basics in headless Chromium: undo / redo, copy / paste, unsaved edits, old versions,
errors on their field, keyboard access, and the {{…}} autocomplete of template paths."""

import json
import re

import pytest
from playwright.sync_api import expect

from definitions.models import Definition
from definitions.services import store_definition
from executions.models import Execution
from tests.support.browser import has_class, node, shot, wait_valid
from tests.support.definitions import BRANCHING

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_editor(page, path: str = "/ui/editor/checkout/") -> None:
    page.goto(path)
    page.wait_for_selector("#editor[data-validity=valid]")


def field(page, name: str):
    return page.locator(f'.panel [data-field="{name}"]')


def test_undo_and_redo_edits_but_leave_a_text_fields_own_undo_alone(page):
    store_definition(BRANCHING)
    open_editor(page)
    save = page.locator("[data-action=save]")
    expect(save).to_be_disabled()  # nothing changed since v1
    expect(page.locator("[data-action=undo]")).to_be_disabled()

    node(page, "cool").click()
    page.keyboard.press("Delete")
    expect(node(page, "cool")).to_have_count(0)
    expect(save).to_be_enabled()

    # Typing in a field, then Ctrl+Z in it: the field's own undo, the deleted node stays deleted.
    node(page, "ship").click()
    url = field(page, "request.url")
    url.click()
    url.press("End")
    url.type("/v2")
    expect(url).to_have_value("http://ship.local/s/v2")
    for _ in "/v2":  # typed key by key, undone key by key
        url.press("Control+z")
    expect(url).to_have_value("http://ship.local/s")
    expect(node(page, "cool")).to_have_count(0)

    # Outside the fields, Ctrl+Z undoes the deletion and Ctrl+Shift+Z does it again.
    page.locator("svg.graph").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    expect(node(page, "cool")).to_have_count(1)
    expect(page.locator("#editor")).to_have_attribute("data-dirty", "false")
    expect(save).to_be_disabled()  # back to what v1 says
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "cool")).to_have_count(0)
    page.click("[data-action=undo]")
    expect(node(page, "cool")).to_have_count(1)
    page.click("[data-action=redo]")
    expect(node(page, "cool")).to_have_count(0)

    # Leaving with unsaved edits asks first.
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.evaluate("() => { location.href = '/admin/'; }")
    page.wait_for_timeout(500)
    assert dialogs == ["beforeunload"]
    expect(page).to_have_url(re.compile(r"/ui/editor/checkout/$"))


def test_copy_paste_a_node_and_save_only_what_changed(page):
    store_definition(BRANCHING)
    open_editor(page)
    node(page, "card").click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(node(page, "card_copy")).to_have_count(1)
    expect(node(page, "card_copy")).to_have_class(has_class("selected"))
    expect(field(page, "request.url")).to_have_value("http://pay.local/card")  # the copy's fields
    expect(field(page, "next")).to_have_value("cool")  # it keeps pointing where the original did
    page.keyboard.press("Control+z")
    expect(node(page, "card_copy")).to_have_count(0)
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "card_copy")).to_have_count(1)

    # Nothing points at the copy, so the definition is invalid until something does: its error is on the graph.
    expect(page.locator("#editor")).to_have_attribute("data-validity", "invalid")
    node(page, "route").click()
    page.click("text=+ case")
    page.select_option('.panel [data-field="cases.1.next"]', "card_copy")
    wait_valid(page)
    page.click("[data-action=save]")
    expect(page.locator(".save-msg")).to_contain_text("Saved checkout v2")
    expect(page.locator("[data-action=save]")).to_be_disabled()
    assert Definition.objects.filter(name="checkout").count() == 2
    shot(page, "editor-pasted")


def test_an_old_version_is_flagged_and_errors_sit_on_their_field(page):
    store_definition(BRANCHING)
    store_definition({**BRANCHING, "description": "v2"})
    open_editor(page, "/ui/editor/checkout/1/")
    warning = page.locator(".old-version-banner")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("an old version: the latest is v2")
    expect(warning).to_contain_text("Saving stores v3")
    open_editor(page, "/ui/editor/checkout/2/")
    expect(warning).to_be_hidden()

    node(page, "ship").click()
    page.fill('.panel [data-field="retry.max_attempts"]', "-1")
    url = field(page, "request.url")
    url.fill("http://ship.local/{{payload.id")
    expect(page.locator("#editor")).to_have_attribute("data-validity", "invalid")
    attempts = field(page, "retry.max_attempts")
    expect(attempts).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_count(2)
    expect(page.locator(".field:has([data-field='retry.max_attempts']) .field-error")).to_contain_text(
        "max_attempts must be between 1 and 100"
    )
    expect(page.locator(".field:has([data-field='request.url']) .field-error")).to_contain_text("unclosed '{{'")
    shot(page, "editor-field-errors")
    url.fill("http://ship.local/{{payload.id}}")
    attempts.fill("2")
    wait_valid(page)
    expect(page.locator(".field-error")).to_have_count(0)


def test_nodes_and_panel_are_reachable_by_keyboard(page):
    store_definition(BRANCHING)
    open_editor(page)
    reserve = page.get_by_role("button", name=re.compile(r"^task node reserve \(start\)"))
    expect(reserve).to_have_count(1)
    reserve.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.dataset.id")
    assert focused, page.evaluate("() => document.activeElement.outerHTML.slice(0, 300)")
    assert focused == "route"  # the next node in reading order
    page.keyboard.press("Enter")
    expect(node(page, focused)).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".panel-head h2")).to_have_text(focused)
    expect(page.locator(f'.node[data-id="{focused}"]')).to_be_focused()  # the redraw kept the focus
    expect(page.get_by_role("tab", name="Simulate")).to_have_attribute("aria-controls", "panel-simulate")
    expect(page.get_by_role("tabpanel")).to_have_count(1)  # the hidden one is not exposed
    panel = page.get_by_role("complementary", name="side panel")
    expect(panel.get_by_role("combobox", name=re.compile(r"^type"))).to_have_value("switch")  # labelled fields
    expect(panel.get_by_role("textbox", name="id", exact=True)).to_have_value("route")


def test_typing_two_braces_offers_the_template_paths_the_node_can_read(page):
    store_definition(BRANCHING)
    open_editor(page)
    node(page, "ship").click()
    url = field(page, "request.url")
    url.click()
    url.press("End")
    url.type("/{{nod")
    options = page.get_by_role("listbox", name="template paths").get_by_role("option")
    expect(options.first).to_have_text("nodes.card.response.body")  # the nodes upstream of ship
    names = options.all_inner_texts()
    assert "nodes.pix.callback.body" in names and "nodes.reserve.response.status" in names
    assert not any(name.startswith("nodes.ship.") or name.startswith("nodes.done.") for name in names)
    url.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    url.press("Enter")
    expect(url).to_have_value("http://ship.local/s/{{nodes.card.response.status}}")
    expect(page.get_by_role("listbox")).to_be_hidden()
    wait_valid(page)
    url.press("Control+z")  # the field's own undo takes the insertion back
    expect(url).to_have_value("http://ship.local/s/{{nod")
    shot(page, "editor-autocomplete")


def test_an_execution_page_links_to_simulating_its_definition_with_its_input(page):
    definition = store_definition(BRANCHING)
    execution = Execution.objects.create(
        definition=definition, status="FAILED", input={"method": "pix", "orderId": "A-17"}
    )
    page.goto(f"/ui/executions/{execution.pk}/")
    page.click("text=simulate with this input")
    page.wait_for_selector("#editor[data-ready=true]")
    expect(page).to_have_url(re.compile(rf"/ui/editor/checkout/1/\?simulate={execution.pk}$"))
    expect(page.locator("#editor")).to_have_attribute("data-tab", "simulate")
    expect(page.locator(".sim-from")).to_contain_text(str(execution.pk)[:8])
    assert json.loads(page.input_value('[data-field="sim-input"]')) == execution.input
    page.click("[data-action=play]")
    expect(page.locator(".sim-path")).to_contain_text("pix")
    expect(page.locator("#editor")).to_have_attribute("data-sim", "done", timeout=20_000)
    shot(page, "editor-simulate-execution-input")

    page.goto("/ui/editor/checkout/?simulate=not-an-execution")  # ignored, never a 500
    page.wait_for_selector("#editor[data-ready=true]")
    expect(page.locator("#editor")).to_have_attribute("data-tab", "edit")
    expect(page.locator('[data-field="sim-input"]')).to_have_value("{}")


def test_the_simulate_tab_runs_parallel_branches_with_default_answers(page):
    from tests.test_simulate import fan

    store_definition(fan())
    open_editor(page, "/ui/editor/fan/")
    # The node after the fork is drawn after the join: below everything the branches run.
    ys = dict(page.eval_on_selector_all(".node", "ns => ns.map(n => [n.dataset.id, n.transform.baseVal[0].matrix.f])"))
    assert ys["end"] > ys["a2"] > ys["a"] == ys["b"] == ys["c"] > ys["fork"]
    page.click("[data-tab=simulate]")
    page.fill('[data-field="sim-input"]', '{"order": "A-17"}')
    page.click("[data-action=play]")
    expect(page.locator(".sim-result .status-badge")).to_have_text("SUCCEEDED")
    expect(page.locator(".sim-path")).to_contain_text("fork → a → a2 → b → c → end")
    expect(page.locator("#editor")).to_have_attribute("data-sim", "done", timeout=20_000)
    taken = page.eval_on_selector_all(".edge.taken", "es => es.map(e => e.dataset.from + '>' + e.dataset.to)")
    assert sorted(taken) == ["a>a2", "fork>a", "fork>b", "fork>c", "fork>end"]  # each branch entered from the fork
    page.click('.sim-stops li:has(code:text-is("b"))')
    expect(page.locator(".sim-step")).to_contain_text("branch b")
    expect(page.locator(".sim-step")).to_contain_text('"order": "A-17"')  # the default answer echoes the request
    shot(page, "editor-simulate-parallel")
