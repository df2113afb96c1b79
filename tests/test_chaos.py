"""Trama keeps its promises under faults: the short chaos suite (issue #7).

Each test runs the mixed workload of tests/support/chaos.py (task chains, a
switch, a 1 s sleep, async callbacks, a share that fails and compensates; node
retries off) on three real qclusters and a timer loop, fires one fault, and
asserts the bar: no start rejected, no execution lost, stuck or with the wrong
outcome, no callback refused, and extra calls only for the calls that were in
flight at the fault. The long version is bench/chaos.py; the numbers are in
docs/reliability.md.
"""

from __future__ import annotations

import pytest
from django.db import connection

from definitions.services import store_definition
from tests.support import chaos, wait_until
from trama_project.models import ApiToken

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

LEASE_S = 2  # short, so a dead or stopped worker is replaced within seconds
# Executions whose wake-up was lost (a killed cluster's prefetched tasks, a flushed queue) wait for the
# timer loop's re-nudge, TRAMA_RENUDGE_SECONDS (default 15 s): the settle time covers it.
SETTLE_S = 75


@pytest.fixture
def harness(service, worker_pool, live_server, settings):
    settings.TRAMA_PUBLIC_URL = live_server.url
    settings.TRAMA_EGRESS_ALLOW = ["127.0.0.1"]
    worker_pool.env |= {"TRAMA_PUBLIC_URL": live_server.url, "TRAMA_LEASE_SECONDS": LEASE_S}
    store_definition(chaos.chain_definition(service.url))
    store_definition(chaos.branch_definition(service.url))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        observer = cursor.fetchone()[0]
    _, token = ApiToken.mint("chaos")
    return chaos.Harness(live_server.url, token, service, worker_pool, observer_pid=observer)


@pytest.fixture
def redis_broker(harness, test_redis_url, monkeypatch):
    """Workers, timers and this process (the live server enqueues starts) all on the suite's own Redis database
    (TRAMA_TEST_REDIS_URL): the broker-loss test flushes it."""
    import redis
    from django_q.conf import Conf

    from executions.services import records

    redis.Redis.from_url(test_redis_url).flushdb()
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)  # settings name the ORM broker's class (executions/broker.py)
    monkeypatch.setattr(records, "_broker", None)  # this process's cached broker: the live server makes a Redis one
    monkeypatch.setattr(Conf, "REDIS", test_redis_url)
    harness.pool.env["TRAMA_BROKER_URL"] = test_redis_url
    harness.redis_url = test_redis_url
    return harness


def run(harness, name: str, count: int, fault: chaos.Fault | None = None, **kwargs) -> chaos.Result:
    harness.start()
    result = chaos.run_scenario(harness, name, count, fault, settle_s=SETTLE_S, **kwargs)
    print("\n" + chaos.TABLE_HEADER + "\n" + result.row())
    return result


def explain(result: chaos.Result) -> str:
    faults = "\n".join(f"  fault: {f.what} (in flight {f.in_flight})" for f in result.faults)
    return f"{result.row()}\n{faults}\n" + "\n".join(result.problems[:40])


def assert_bar(result: chaos.Result) -> None:
    assert (result.rejected, result.lost, result.stuck, result.wrong) == (0, 0, 0, 0), explain(result)
    assert result.bad_callbacks == 0, explain(result)
    assert result.unexplained == 0, explain(result)  # only executions held at a fault were called again
    assert result.extra_calls <= result.in_flight, explain(result)


def test_sigkill_of_a_worker_with_calls_in_flight_loses_nothing(harness):
    fault = chaos.Fault("sigkill", chaos.sigkill_one(restart_after_s=1.0))
    result = run(harness, "sigkill", 30, fault, delay_s=0.5)
    assert_bar(result)


def test_a_zombie_worker_resumed_past_its_lease_writes_nothing(harness):
    # Stopped once more are in flight than two clusters can hold, so the stopped one holds some (pigeonhole):
    # waiting for every cluster to be full could miss the short window on a loaded machine, and fire idle.
    fault = chaos.Fault("zombie", chaos.zombie, ready=lambda h: h.in_flight() > (h.workers - 1) * h.capacity)
    result = run(harness, "zombie", 45, fault, delay_s=0.5)
    assert result.faults[0].in_flight > 0, explain(result)
    assert "taken over: True" in result.faults[0].what, explain(result)
    # The zombie came back holding executions another worker had taken: its fence or its lease stops it.
    wait_until(lambda: harness.refused_writes() >= 1, timeout=30, message=explain(result))
    assert_bar(result)


def test_a_kill_storm_loses_nothing(harness):
    fault = chaos.Fault("storm", chaos.kill_storm, every_s=2.0)
    result = run(harness, "kill storm", 40, fault, rate=4.0, delay_s=0.2, max_faults=5)
    assert_bar(result)


def test_a_lost_redis_queue_is_recovered_by_the_timer_loop(redis_broker):
    fault = chaos.Fault("broker loss", chaos.broker_flush, ready=chaos.every_state_present)
    result = run(redis_broker, "broker lost (Redis FLUSHDB)", 30, fault, rate=30.0, delay_s=0.5)
    assert result.extra_calls == 0, explain(result)  # nothing died: a lost wake-up duplicates nothing
    assert_bar(result)


def test_database_connections_cut_for_seconds_workers_recover(harness):
    fault = chaos.Fault("pg cut", chaos.cut_connections(seconds=6.0))
    result = run(harness, "PostgreSQL connections cut 6 s", 30, fault, rate=5.0, delay_s=0.2)
    assert_bar(result)


def test_business_failures_do_not_hold_up_the_others(harness):
    harness.start()
    clean = chaos.run_scenario(harness, "no failures", 30, fail_rate=0.0, settle_s=SETTLE_S)
    failing = chaos.run_scenario(harness, "10% business failures", 30, fail_rate=0.1, settle_s=SETTLE_S)
    print(f"\n{chaos.TABLE_HEADER}\n{clean.row()}\n{failing.row()}")
    for result in (clean, failing):
        assert_bar(result)
        assert result.extra_calls == 0, explain(result)
    assert failing.p50_s is not None and clean.p50_s is not None
