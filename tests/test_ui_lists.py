"""The overview pages through Django's test client: dashboard, executions list, definitions, error pages."""

import html
import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.utils import timezone

from executions.models import Execution
from graph_editor import listing
from tests.support.definitions import DefinitionFactory
from trama_project import urls as project_urls
from trama_project.views import server_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", password="pw-for-tests", is_staff=True))
    return client


def run(definition, status="SUCCEEDED", ago=timedelta(minutes=5), took=timedelta(seconds=2), **fields) -> Execution:
    """An execution row as the engine leaves it: created ``ago``, started then, finished ``took`` later if final."""
    created = timezone.now() - ago
    finished = created + took if status in ("SUCCEEDED", "FAILED", "COMPENSATED", "CANCELLED") else None
    fields = {"input": {}, "started_at": created, "finished_at": finished} | fields
    return Execution.objects.create(definition=definition, status=status, created_at=created, **fields)


def row_ids(response) -> list[str]:
    return re.findall(r'<tr class="exec-row[^"]*" data-id="([0-9a-f-]+)"', response.content.decode())


@pytest.mark.parametrize("url", ["/", "/ui/executions/", "/ui/definitions/", "/ui/definitions/orders/"])
def test_overview_pages_send_anonymous_users_to_the_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


# --- dashboard -----------------------------------------------------------------------------------


def test_dashboard_counts_by_status_over_the_last_hour_and_day(staff_client):
    orders = DefinitionFactory(name="orders")
    run(orders, "SUCCEEDED", ago=timedelta(minutes=10))
    run(orders, "FAILED", ago=timedelta(minutes=20))
    run(orders, "FAILED", ago=timedelta(hours=5))
    run(orders, "SUCCEEDED", ago=timedelta(days=3))  # outside both windows
    response = staff_client.get("/")
    assert response.status_code == 200
    (_, _, hour), (_, _, day) = response.context["windows"]
    assert (hour["SUCCEEDED"], hour["FAILED"], hour["RUNNING"]) == (1, 1, 0)
    assert (day["SUCCEEDED"], day["FAILED"]) == (1, 2)
    assert 'href="/ui/executions/?status=FAILED&amp;range=24h"' in response.content.decode()


def test_dashboard_ranks_slowest_and_most_failing_definitions(staff_client):
    slow, flaky, fine = (DefinitionFactory(name=n) for n in ("slow", "flaky", "fine"))
    run(slow, took=timedelta(minutes=3))
    run(fine, took=timedelta(seconds=1))
    for status in ("FAILED", "COMPENSATED", "SUCCEEDED", "SUCCEEDED"):
        run(flaky, status, took=timedelta(seconds=5))
    response = staff_client.get("/")
    assert [row["name"] for row in response.context["slowest"]] == ["slow", "flaky", "fine"]
    assert response.context["slowest"][0]["mean"] == timedelta(minutes=3)
    assert response.context["failing"] == [{"name": "flaky", "total": 4, "failed": 2, "rate": 0.5}]
    assert "50 %" in response.content.decode()


def test_dashboard_lists_the_executions_waiting_longest_first(staff_client):
    orders = DefinitionFactory(name="orders")
    recent = run(orders, "WAITING", current_node="pay")
    old = run(orders, "SLEEPING", current_node="cool")
    run(orders, "RUNNING")
    Execution.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    response = staff_client.get("/")
    assert [e.pk for e in response.context["waiting"]] == [old.pk, recent.pk]
    assert f'href="/ui/executions/{old.pk}/"' in response.content.decode()


# --- executions list -------------------------------------------------------------------------------


def test_list_shows_roots_newest_first_with_branches_grouped_under_their_parent(staff_client):
    orders = DefinitionFactory(name="orders")
    older = run(orders, ago=timedelta(hours=1))
    parent = run(orders, "WAITING", ago=timedelta(minutes=1))
    branch = run(orders, "RUNNING", parent=parent, branch="audit")
    nested = run(orders, "SUCCEEDED", parent=branch, branch="deep")
    response = staff_client.get("/ui/executions/")
    assert row_ids(response) == [str(parent.pk), str(older.pk)]  # no row of their own for branches
    assert response.context["rows"][0] == (parent, [branch, nested])
    page = response.content.decode()
    assert "2 branches" in page and f'href="/ui/executions/{nested.pk}/"' in page


def test_list_filters_by_status_with_counts_as_chips(staff_client):
    orders = DefinitionFactory(name="orders")
    failed = run(orders, "FAILED")
    run(orders, "SUCCEEDED")
    run(orders, "SUCCEEDED")
    response = staff_client.get("/ui/executions/?status=FAILED&definition=orders")
    assert row_ids(response) == [str(failed.pk)]
    counts = response.context["counts"]
    assert (counts["FAILED"], counts["SUCCEEDED"], counts["WAITING"]) == (1, 2, 0)
    # A chip keeps the other filters and swaps the status.
    chip = re.search(r'data-status="SUCCEEDED" href="([^"]+)"', response.content.decode()).group(1)
    assert parse_qs(urlparse(chip.replace("&amp;", "&")).query) == {"status": ["SUCCEEDED"], "definition": ["orders"]}
    several = staff_client.get("/ui/executions/?status=failed,succeeded")
    assert len(row_ids(several)) == 3


def test_list_searches_by_id_prefix_with_or_without_dashes(staff_client):
    orders = DefinitionFactory(name="orders")
    wanted = run(orders, id=uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6"))
    run(orders, id=uuid.UUID("3fa86000-0000-4000-8000-000000000000"))
    assert row_ids(staff_client.get("/ui/executions/?id=3fa85f")) == [str(wanted.pk)]
    assert row_ids(staff_client.get("/ui/executions/?id=3FA85F64-5717")) == [str(wanted.pk)]
    assert len(row_ids(staff_client.get("/ui/executions/?id=3fa8"))) == 2


def test_a_branch_id_finds_the_execution_it_belongs_to(staff_client):
    orders = DefinitionFactory(name="orders")
    parent = run(orders, "WAITING")
    branch = run(orders, "WAITING", parent=parent, branch="fan", id=uuid.UUID("abcdef00-0000-4000-8000-000000000001"))
    run(orders, "RUNNING", parent=branch, branch="deep", id=uuid.UUID("abcdef99-0000-4000-8000-000000000002"))
    run(orders)
    assert row_ids(staff_client.get("/ui/executions/?id=abcdef00")) == [str(parent.pk)]
    assert row_ids(staff_client.get("/ui/executions/?id=abcdef99")) == [str(parent.pk)]  # two levels down


def test_list_searches_a_value_at_a_json_path_in_the_input(staff_client):
    orders = DefinitionFactory(name="orders")
    a17 = run(orders, input={"orderId": "A-17", "customer": {"id": 5, "vip": True}})
    numeric = run(orders, input={"orderId": 17})
    run(orders, input={"orderId": "A-18", "customer": {"id": 6}})
    assert row_ids(staff_client.get("/ui/executions/", {"input": "orderId = A-17"})) == [str(a17.pk)]
    assert row_ids(staff_client.get("/ui/executions/", {"input": "$.customer.id=5"})) == [str(a17.pk)]
    assert row_ids(staff_client.get("/ui/executions/", {"input": "customer.vip = true"})) == [str(a17.pk)]
    assert row_ids(staff_client.get("/ui/executions/", {"input": "orderId = 17"})) == [str(numeric.pk)]
    assert row_ids(staff_client.get("/ui/executions/", {"input": 'orderId = "17"'})) == []


def test_list_filters_by_time_range(staff_client):
    orders = DefinitionFactory(name="orders")
    recent = run(orders, ago=timedelta(minutes=30))
    middle = run(orders, ago=timedelta(hours=5))
    run(orders, ago=timedelta(days=2))
    assert row_ids(staff_client.get("/ui/executions/?range=1h")) == [str(recent.pk)]
    since = (timezone.now() - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")  # as a datetime-local field sends it
    until = (timezone.now() - timedelta(hours=1)).isoformat()
    assert row_ids(staff_client.get("/ui/executions/", {"from": since, "to": until})) == [str(middle.pk)]


def test_list_shows_duration_version_and_both_times(staff_client):
    orders = DefinitionFactory(name="orders", version=3)
    run(orders, took=timedelta(minutes=4, seconds=5), ago=timedelta(hours=2))
    page = staff_client.get("/ui/executions/").content.decode()
    assert "4 m 05 s" in page
    assert 'href="/ui/definitions/orders/3/">orders</a>' in page and "v3" in page
    assert "2 h ago" in page
    assert re.search(r'class="abs-time">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<', page)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"status": "DONE"}, "Unknown status 'DONE'"),
        ({"id": "zz-top"}, "hexadecimal digits"),
        ({"input": "orderId"}, "path = value"),
        ({"from": "yesterday"}, "'from' must be an ISO-8601 date-time"),
        ({"to": "9999-12-31T23:59:59-23:59"}, "'to' is out of range"),
        ({"range": "1y"}, "Unknown range '1y'"),
        ({"after": "garbage"}, "page link is broken"),
    ],
)
def test_bad_filters_are_explained_on_the_page_never_a_500(staff_client, query, message):
    run(DefinitionFactory(name="orders"))
    response = staff_client.get("/ui/executions/", query)
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert len(row_ids(response)) == 1  # the other filters (none here) still apply


def test_keyset_pages_walk_every_execution_once_even_with_equal_times(staff_client):
    orders = DefinitionFactory(name="orders")
    same = timezone.now() - timedelta(minutes=1)
    created = {str(run(orders, ago=timedelta(seconds=i)).pk) for i in range(70)}
    created |= {str(Execution.objects.create(definition=orders, created_at=same).pk) for _ in range(40)}
    seen, url = [], "/ui/executions/?definition=orders"
    while url:
        response = staff_client.get(url)
        seen += row_ids(response)
        cursor = response.context["next_cursor"]
        url = f"/ui/executions/?definition=orders&after={cursor}" if cursor else None
    assert len(seen) == len(created) == 110
    assert set(seen) == created


def test_status_counts_are_capped(staff_client, monkeypatch):
    monkeypatch.setattr(listing, "COUNT_CAP", 3)
    orders = DefinitionFactory(name="orders")
    for _ in range(5):
        run(orders)
    response = staff_client.get("/ui/executions/")
    assert response.context["counts"]["SUCCEEDED"] == 4
    assert "3+" in response.content.decode()


def test_partial_answers_only_the_results_for_the_auto_refresh(staff_client):
    execution = run(DefinitionFactory(name="orders"))
    response = staff_client.get("/ui/executions/?partial=1&status=SUCCEEDED")
    body = response.content.decode()
    assert row_ids(response) == [str(execution.pk)]
    assert "<html" not in body and 'class="chips"' in body


# --- definitions -----------------------------------------------------------------------------------


def test_definitions_list_groups_versions_by_name_with_counts_and_failure_rate(staff_client):
    v1, v2 = DefinitionFactory(name="orders", version=1), DefinitionFactory(name="orders", version=2)
    DefinitionFactory(name="billing")
    run(v1, "FAILED")
    run(v2, "SUCCEEDED")
    run(v2, "SUCCEEDED")
    run(v2, "COMPENSATED")
    response = staff_client.get("/ui/definitions/")
    summaries = {s.name: s for s in response.context["summaries"]}
    assert list(summaries) == ["billing", "orders"]
    assert [d.version for d in summaries["orders"].versions] == [2, 1]
    assert (summaries["orders"].total, summaries["orders"].failed, summaries["billing"].total) == (4, 2, 0)
    page = response.content.decode()
    assert 'href="/ui/definitions/orders/1/">v1</a>' in page and "50 %" in page


def test_definition_page_draws_the_asked_version_with_its_counts(staff_client):
    v1, _ = DefinitionFactory(name="orders", version=1), DefinitionFactory(name="orders", version=2)
    run(v1, "FAILED")
    latest = staff_client.get("/ui/definitions/orders/")
    assert latest.context["definition"].version == 2
    assert [(d.version, n) for d, n in latest.context["versions"]] == [(2, 0), (1, 1)]
    old = staff_client.get("/ui/definitions/orders/1/")
    assert old.context["definition"] == v1
    page = old.content.decode()
    assert 'id="definition-spec"' in page and "an older version" in page and "js/definition.js" in page
    assert staff_client.get("/ui/definitions/orders/7/").status_code == 404
    assert staff_client.get("/ui/definitions/nope/").status_code == 404


# --- error pages -----------------------------------------------------------------------------------


def test_unknown_pages_get_a_styled_404_with_a_way_back(staff_client, settings):
    settings.DEBUG = False
    response = staff_client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Nothing here" in page and "/no/such/page/" in page
    assert 'href="/">← the dashboard</a>' in page and "trama.css" in page
    missing = staff_client.get("/ui/definitions/nope/").content.decode()
    assert "No definition &#x27;nope&#x27;." in missing


def test_server_errors_get_a_styled_500_with_a_way_back(settings):
    settings.DEBUG = False
    assert project_urls.handler500 == "trama_project.views.server_error"
    response = server_error(RequestFactory().get("/ui/executions/"))
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something broke on our side" in page and 'href="/">← the dashboard</a>' in page


def test_the_admin_links_to_the_overview_pages(staff_client):
    user = get_user_model().objects.get(username="ops")
    user.is_superuser = True
    user.save()
    DefinitionFactory(name="orders")
    index = staff_client.get("/admin/").content.decode()
    assert 'href="/">View site</a>' in index  # the dashboard
    executions = staff_client.get("/admin/executions/execution/").content.decode()
    assert 'href="/ui/executions/">Executions list (UI)</a>' in executions
    definitions = staff_client.get("/admin/definitions/definition/").content.decode()
    assert 'href="/ui/definitions/">Definitions (UI)</a>' in definitions
    assert 'href="/ui/definitions/orders/1/">page</a>' in definitions
    dashboard = staff_client.get("/").content.decode()
    assert 'href="/ui/executions/">all executions »</a>' in dashboard
