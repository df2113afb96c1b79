"""The ORM broker on PostgreSQL (executions/broker.py): woken by NOTIFY, tasks taken once."""

import threading

import pytest
from django.db import connections, transaction
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from executions.broker import ListeningORM

pytestmark = pytest.mark.django_db(transaction=True)


def task(n: int) -> str:
    return SignedPackage.dumps({"id": f"t{n}", "func": "executions.tasks.advance", "args": (), "kwargs": {}})


@pytest.fixture
def broker(settings):
    settings.TRAMA_QUEUE_IDLE_SECONDS = 60  # longer than any test waits: only a NOTIFY ends a wait
    made = []

    def make() -> ListeningORM:
        made.append(ListeningORM(list_key="trama"))
        return made[-1]

    yield make
    for each in made:
        each._close_listener()


def test_an_idle_dequeue_is_woken_by_an_enqueue_in_another_connection(broker):
    listener, sender = broker(), broker()
    listener._listening_connection()  # LISTEN before anything is enqueued
    woken = threading.Event()

    def wait() -> None:
        try:
            assert listener.dequeue() is None  # nothing there yet: it blocks until the NOTIFY
            woken.set()
        finally:
            connections.close_all()  # this thread's connection back to the pool

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not woken.wait(0.5), "the idle dequeue returned without a task being enqueued"
    payload = task(1)
    sender.enqueue(payload)
    assert woken.wait(20), "the NOTIFY of the enqueue did not wake the idle dequeue"
    waiter.join()
    assert [taken for _, taken in listener.dequeue()] == [payload]


def test_the_notification_is_sent_when_the_enqueue_commits_never_before(broker):
    listener, sender = broker(), broker()
    waiting = listener._listening_connection()
    with transaction.atomic():
        sender.enqueue(task(1))
        assert list(waiting.notifies(timeout=0.3, stop_after=1)) == []  # the row is not visible yet
    assert len(list(waiting.notifies(timeout=20, stop_after=1))) == 1


def test_two_clusters_taking_at_once_never_take_the_same_task(broker):
    sender = broker()
    for n in range(40):
        sender.enqueue(task(n))
    takers = [broker(), broker()]
    taken: list[list[int]] = [[], []]

    def drain(i: int) -> None:
        try:
            while batch := takers[i]._take():
                taken[i].extend(task_id for task_id, _ in batch)
        finally:
            connections.close_all()  # this thread's connection back to the pool

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(OrmQ.objects.values_list("id", flat=True))
    assert len(taken[0] + taken[1]) == 40


def test_a_taken_task_is_locked_until_the_retry_time(broker):
    sender = broker()
    sender.enqueue(task(1))
    assert len(broker()._take()) == 1
    assert broker()._take() == []  # locked for Conf.RETRY seconds: a dead cluster's task comes back then
