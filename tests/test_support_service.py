"""Tests of the test infrastructure itself: TestService, wait_until and WorkerPool."""

import signal
import threading
import time

import pytest
import requests

from tests.support import Callback, Reply, TestService, wait_until


def test_records_method_path_query_headers_and_body(service):
    answer = requests.post(
        f"{service.url}/orders/42?x=1&tag=a&tag=b",
        json={"amount": 5},
        headers={"Idempotency-Key": "e1:n1:1"},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "path": "/orders/42", "echo": {"amount": 5}}

    requests.get(f"{service.url}/plain", data="hello", timeout=5)

    first, second = service.requests
    assert first.method == "POST"
    assert first.path == "/orders/42"
    assert first.query == {"x": "1", "tag": ["a", "b"]}
    assert first.headers["idempotency-key"] == "e1:n1:1"
    assert first.headers["IDEMPOTENCY-KEY"] == "e1:n1:1"
    assert first.header("Content-Type") == "application/json"
    assert first.body == {"amount": 5}
    assert first.at <= time.time()
    assert second.method == "GET" and second.body == "hello"
    assert [r.path for r in service.calls(method="post")] == ["/orders/42"]
    assert service.calls(path="/plain") == [second]
    assert service.wait_for_calls(1, path="/plain", timeout=1) == [second]


def test_scripted_replies_are_consumed_in_order_then_defaults_apply(service):
    service.script("POST", "/pay", Reply(500, {"error": "boom"}), Reply(503), Reply(201, {"id": 7}))
    statuses = [requests.post(f"{service.url}/pay", json={}, timeout=5) for _ in range(4)]
    assert [a.status_code for a in statuses] == [500, 503, 201, 200]
    assert statuses[0].json() == {"error": "boom"}
    assert statuses[1].content == b""
    assert statuses[2].json() == {"id": 7}
    assert statuses[3].json()["path"] == "/pay"
    # other methods on the same path are separate routes
    assert requests.get(f"{service.url}/pay", timeout=5).status_code == 200

    service.default("POST", "/pay", Reply(402, {"declined": True}, headers={"X-Reason": "card"}))
    answer = requests.post(f"{service.url}/pay", json={}, timeout=5)
    assert answer.status_code == 402 and answer.headers["X-Reason"] == "card"
    service.script("POST", "/pay", Reply(200, lambda r: {"got": r.body}))
    assert requests.post(f"{service.url}/pay", json=[1], timeout=5).json() == {"got": [1]}
    assert requests.post(f"{service.url}/pay", json={}, timeout=5).status_code == 402


def test_keep_alive_connection_is_reused(service):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"{service.url}/k", timeout=5).status_code == 200
    assert len(service.calls(path="/k")) == 3


def test_delay_slows_the_answer(service):
    service.script("GET", "/slow", Reply(delay_s=0.4))
    started = time.monotonic()
    requests.get(f"{service.url}/slow", timeout=5)
    assert time.monotonic() - started >= 0.4
    service.script("GET", "/slow", Reply(delay_s=2))
    with pytest.raises(requests.Timeout):
        requests.get(f"{service.url}/slow", timeout=0.3)


def test_drop_closes_the_connection_without_an_answer(service):
    service.script("POST", "/flaky", Reply(drop=True))
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{service.url}/flaky", json={"a": 1}, timeout=5)
    assert service.wait_for_calls(1, path="/flaky")[0].body == {"a": 1}
    assert requests.post(f"{service.url}/flaky", json={}, timeout=5).status_code == 200


def _callback_headers(receiver: TestService, token: str = "tok-1") -> dict:
    return {"X-Trama-Callback-Url": f"{receiver.url}/cb/{token}", "X-Trama-Callback-Token": token}


def test_callback_before_reply_arrives_before_the_answer():
    with TestService() as svc, TestService() as receiver:
        receiver.default("POST", "/cb/tok-1", Reply(202, {"accepted": True}))
        svc.script(
            "POST", "/job", Reply(202, {"queued": True}, callback=Callback({"status": "succeeded"}, before_reply=True))
        )

        answer = requests.post(f"{svc.url}/job", json={}, headers=_callback_headers(receiver), timeout=5)
        answered_at = time.time()

        assert answer.status_code == 202
        # synchronous: the callback was delivered and answered before the service replied
        (callback,) = receiver.calls(path="/cb/tok-1")
        assert callback.at < answered_at
        assert callback.body == {"status": "succeeded"}
        assert "X-Trama-Callback-Token" not in callback.headers  # token_in="url"
        assert svc.callback_results == [(202, {"accepted": True})]


def test_callback_after_reply_with_token_header_delivered_twice():
    # Both deliveries wait at `released` until the test has the answer: had the callback held the
    # answer, it would already have been delivered. The receiver answers each only once both are
    # in flight (`both_in_flight`): sent one after the other, neither would get its 202.
    released, both_in_flight = threading.Event(), threading.Barrier(2, timeout=10)

    def body_once_released(_request):
        assert released.wait(10), "the test never released the callbacks"
        return {"output": {"n": 1}}

    def accept_when_both_arrived(_request):
        both_in_flight.wait()
        return {"accepted": True}

    with TestService() as svc, TestService() as receiver:
        receiver.default("POST", "/cb/tok-2", Reply(202, accept_when_both_arrived))
        callback = Callback(body_once_released, times=2, token_in="header")
        svc.script("POST", "/job", Reply(202, callback=callback))

        answer = requests.post(f"{svc.url}/job", json={}, headers=_callback_headers(receiver, "tok-2"), timeout=5)
        assert answer.status_code == 202
        assert receiver.calls() == []  # the callback did not hold the answer
        released.set()

        deliveries = receiver.wait_for_calls(2, path="/cb/tok-2", timeout=10)
        assert [d.body for d in deliveries] == [{"output": {"n": 1}}] * 2
        assert all(d.headers["x-trama-callback-token"] == "tok-2" for d in deliveries)
        results = svc.wait_for_callbacks(2)
        assert results == [(202, {"accepted": True})] * 2  # concurrent: both were in flight at once


def test_callback_failure_is_recorded(service):
    service.script("POST", "/job", Reply(callback=Callback({}, before_reply=True)))
    requests.post(f"{service.url}/job", json={}, timeout=5)  # no callback headers
    assert service.callback_results[0][0] is None


def test_service_is_thread_safe(service):
    def hammer(i):
        for j in range(10):
            requests.post(f"{service.url}/t", json={"i": i, "j": j}, timeout=5)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(service.wait_for_calls(80, path="/t")) == 80


def test_wait_until_returns_the_value_or_raises():
    box = []
    threading.Timer(0.1, box.append, args=("x",)).start()
    assert wait_until(lambda: box, timeout=2) == ["x"]
    with pytest.raises(AssertionError, match="never true"):
        wait_until(lambda: False, timeout=0.1, message="never true")


def _lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.workers
def test_worker_pool_runs_tasks_and_survives_a_killed_worker(worker_pool, tmp_path):
    from django_q.tasks import async_task

    first = worker_pool.start_worker(TRAMA_WORKERS=1)
    second = worker_pool.start_worker(TRAMA_WORKERS=1)
    marker = tmp_path / "ran.txt"

    async_task("tests.support.workers.ping_task", str(marker), "one")
    (line,) = wait_until(lambda: _lines(marker), timeout=30, message=f"ping task never ran\n{worker_pool.logs()}")
    assert line.startswith("one ")

    worker_pool.kill(first, signal.SIGKILL)
    assert first.poll() is not None
    assert second.poll() is None

    async_task("tests.support.workers.ping_task", str(marker), "two")
    lines = wait_until(
        lambda: len(_lines(marker)) >= 2 and _lines(marker),
        timeout=30,
        message=f"second ping never ran\n{worker_pool.logs()}",
    )
    _, pid, group = lines[1].split()
    assert int(group) == second.pid  # run by the surviving cluster
    assert int(pid) != second.pid  # ...in one of its forked worker processes
