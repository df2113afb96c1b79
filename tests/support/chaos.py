"""Chaos scenarios: a mixed workload run under faults, and a checker for Trama's promises.

Used by the short suite (tests/test_chaos.py) and the long run (bench/chaos.py).
The caller provides a ``Harness``: the Trama web URL (API and callbacks), an API
token, a ``TestService`` and a ``WorkerPool`` whose env already names the broker.
``run_scenario`` starts the executions through the API (a real client: an
Idempotency-Key per start and retries on 5xx / network errors), fires the fault
while they run, waits for them to settle and checks:

- rejected starts: a start that never got its 202, even after the retries;
- lost: accepted, but no row, or never started;
- stuck: started but not final when the settle time is over;
- wrong: final status other than the one the workload intended;
- extra calls: calls beyond one per (execution, node, phase), counted from the
  ``Idempotency-Key`` header ``<execution>:<node>[.compensation]:<attempt>`` the
  service records. Node retries are off (``max_attempts`` 1), so every extra
  call is an effect the fault duplicated. ``in_flight`` is the bound they must
  stay under: the calls that can have been in flight at the faults.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from django.db.models.functions import Now

from executions.models import FINAL_STATUSES, Execution
from tests.support import Reply, TestService, WorkerPool

REQUEST_TIMEOUT_S = 3.0  # every workload call; a dead worker's call is waited for this + TRAMA_LEASE_SECONDS
CALLBACK_DELAY_S = 0.5  # the async service calls back this long after answering 202
LEASED_STATUSES = ("RUNNING", "COMPENSATING", "WAITING")


# --- The workload ----------------------------------------------------------------------------


def chain_definition(base: str) -> dict:
    """a -> b -> c; c fails (500) when ``payload.outcome`` is "fail", and a, b are compensated."""
    nodes = {
        "a": _task(base, "a", next="b", compensate=True),
        "b": _task(base, "b", next="c", compensate=True),
        "c": _task(base, "c/{{payload.outcome}}"),
    }
    return {"name": "chaos-chain", "kind": "graph", "start": "a", "nodes": nodes}


def branch_definition(base: str) -> dict:
    """reserve -> switch(method): pix (async callback) | card -> nap (1 s sleep); then ship (fails on "fail")."""
    nodes = {
        "reserve": _task(base, "reserve", next="route", compensate=True),
        "route": {
            "type": "switch",
            "cases": [{"when": {"==": [{"var": "payload.method"}, "pix"]}, "next": "pix"}],
            "default": "card",
        },
        "pix": {
            "type": "async_task",
            "request": {"method": "POST", "url": f"{base}/pix", "timeout_s": REQUEST_TIMEOUT_S},
            "timeout_s": 120,
            "next": "ship",
        },
        "card": _task(base, "card", next="nap", compensate=True),
        "nap": {"type": "sleep", "duration_s": 1, "next": "ship"},
        "ship": _task(base, "ship/{{payload.outcome}}"),
    }
    return {"name": "chaos-branch", "kind": "graph", "start": "reserve", "nodes": nodes}


def _task(base: str, path: str, next: str | None = None, compensate: bool = False) -> dict:
    node: dict = {
        "type": "task",
        "request": {"method": "POST", "url": f"{base}/{path}", "timeout_s": REQUEST_TIMEOUT_S},
    }
    node["retry"] = {"max_attempts": 1}  # off: every extra call the service sees is a duplicated effect
    if compensate:
        node["compensation"] = {"method": "DELETE", "url": f"{base}/{path}", "timeout_s": REQUEST_TIMEOUT_S}
    if next:
        node["next"] = next
    return node


@dataclass(frozen=True)
class Planned:
    """One execution the workload starts, and the final status it must end in."""

    index: int
    definition: str
    input: dict

    @property
    def intended(self) -> str:
        return "COMPENSATED" if self.input["outcome"] == "fail" else "SUCCEEDED"


def plan(count: int, fail_rate: float, seed: int = 7) -> list[Planned]:
    """A third chains, a third pix (callback), a third card (sleep); ``fail_rate`` of them fail at the end."""
    rng = random.Random(seed)
    fail = set(rng.sample(range(count), round(count * fail_rate)))
    shapes = itertools.cycle([("chaos-chain", {}), ("chaos-branch", {"method": "pix"}), ("chaos-branch", {})])
    return [
        Planned(i, name, extra | {"n": i, "outcome": "fail" if i in fail else "ok"})
        for i, (name, extra) in zip(range(count), shapes, strict=False)
    ]


# --- The service ---------------------------------------------------------------------------


class CallbackSender:
    """Calls Trama back for the async ``pix`` requests, retrying 5xx and network errors like a real service."""

    def __init__(self, delay_s: float = CALLBACK_DELAY_S, give_up_s: float = 120.0):
        self.delay_s, self.give_up_s = delay_s, give_up_s
        self.answers: list[int | None] = []  # the final answer of each callback
        self._lock = threading.Lock()

    def reply(self, recorded) -> dict:
        """A ``Reply.body`` callable: schedules the callback, answers the request."""
        url = recorded.header("X-Trama-Callback-Url")
        threading.Thread(target=self._send, args=(url,), daemon=True).start()
        return {"accepted": True}

    def _send(self, url: str | None) -> None:
        time.sleep(self.delay_s)
        answer, deadline, pause = None, time.monotonic() + self.give_up_s, 0.2
        while url and time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                answer = requests.post(url, json={"status": "succeeded", "output": {"paid": True}}, timeout=10)
                answer = answer.status_code
                if answer < 500:
                    break
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
        with self._lock:
            self.answers.append(answer)


def script_service(service: TestService, callbacks: CallbackSender, delay_s: float) -> None:
    """Every call answers after ``delay_s``: 200, 202 + callback for pix, 500 for the "fail" endings."""
    service.reset()
    service.global_default = Reply(200, {"ok": True}, delay_s=delay_s)
    service.default("POST", "/pix", Reply(202, callbacks.reply, delay_s=delay_s))
    for path in ("/c/fail", "/ship/fail"):
        service.default("POST", path, Reply(500, {"error": "business failure"}, delay_s=delay_s))


# --- The harness ---------------------------------------------------------------------------


@dataclass
class Harness:
    """What a scenario drives: Trama's web URL and a token, the service, the worker processes."""

    web_url: str
    token: str
    service: TestService
    pool: WorkerPool
    workers: int = 3
    workers_per_cluster: int = 2  # TRAMA_WORKERS
    # TRAMA_WORKER_CONCURRENCY, small so that every cluster holds executions when a fault hits
    # (with the default, the first clusters to poll would take them all and a fault could hit an idle one).
    concurrency: int = 2
    redis_url: str | None = None  # the broker, when it is Redis (the broker-loss fault flushes it)
    observer_pid: int | None = None  # this process's database session, spared by the connection cut
    clusters: list = field(default_factory=list)
    callbacks: CallbackSender = field(default_factory=CallbackSender)

    def start(self) -> None:
        """Three (``workers``) qclusters and one timer loop."""
        self.pool.env["TRAMA_WORKERS"] = self.workers_per_cluster
        self.pool.env["TRAMA_WORKER_CONCURRENCY"] = self.concurrency
        self.clusters = [self.pool.start_worker() for _ in range(self.workers)]
        self.pool.start_timers()

    @property
    def capacity(self) -> int:
        """The executions one qcluster can have in flight."""
        return self.workers_per_cluster * self.concurrency

    def restart(self, index: int) -> None:
        self.clusters[index] = self.pool.start_worker()

    def in_flight(self) -> int:
        """Executions a worker holds right now (a live lease): at most one call in flight each."""
        return Execution.objects.filter(lease_until__gt=Now(), status__in=LEASED_STATUSES).count()

    def held(self) -> dict[str, int]:
        """The executions held right now, with the fence of the claim that holds each."""
        rows = Execution.objects.filter(lease_until__gt=Now(), status__in=LEASED_STATUSES).values_list("pk", "fence")
        return {str(pk): fence for pk, fence in rows}

    def refused_writes(self) -> int:
        """How many times a worker that lost its claim was stopped: its write missed (the fence held),
        it dropped its next call because its lease could no longer cover it (the lease check), or its
        write failed on the database and its lease had ended before it could retry."""
        text = "".join(w.stderr_path.read_text(errors="replace") for w in self.pool.processes)
        stops = ("lost the execution to another worker", "lease too short for the next call", "until the lease ended")
        return sum(text.count(stop) for stop in stops)


# --- Faults --------------------------------------------------------------------------------


@dataclass
class FaultEvent:
    at: float  # time.time()
    what: str
    in_flight: int  # the calls this fault may duplicate (see each fault)
    held: set[str] = field(default_factory=set)  # executions held when it struck: only these may see extra calls


@dataclass
class Fault:
    """``hit(harness, progress)`` does one fault and returns its events; repeated every ``every_s`` while
    executions are still being started (once when ``every_s`` is None), first when ``ready`` says so."""

    name: str
    hit: Callable[[Harness], list[FaultEvent]]
    every_s: float | None = None
    ready: Callable[[Harness], bool] = lambda h: h.in_flight() >= h.workers * h.capacity - 1


def sigkill_one(restart_after_s: float = 1.0) -> Callable[[Harness], list[FaultEvent]]:
    """SIGKILL one qcluster (its whole process group) with calls in flight, restart it."""
    turn = itertools.count()

    def hit(h: Harness) -> list[FaultEvent]:
        index = next(turn) % len(h.clusters)
        return [_kill(h, index, restart_after_s)]

    return hit


def kill_storm(h: Harness) -> list[FaultEvent]:
    """A random qcluster SIGKILLed and restarted at once."""
    return [_kill(h, random.randrange(len(h.clusters)), 0.0)]


def _kill(h: Harness, index: int, restart_after_s: float) -> FaultEvent:
    h.pool.kill(h.clusters[index], signal.SIGKILL)
    # After the kill the dead worker's leases are frozen in the table: they are among these.
    held = h.held()
    event = FaultEvent(time.time(), f"SIGKILL cluster {index}", min(len(held), h.capacity), set(held))
    time.sleep(restart_after_s)
    h.restart(index)
    return event


def zombie(h: Harness, wait_s: float = 60.0) -> list[FaultEvent]:
    """SIGSTOP a qcluster past its lease; once every execution held then has a new holder (or ended), SIGCONT."""
    proc = h.clusters[0]
    h.pool.kill(proc, signal.SIGSTOP, wait=0)
    at = time.time()
    held = h.held()
    event = FaultEvent(at, "SIGSTOP cluster 0 past its lease", min(len(held), h.capacity), set(held))

    def taken_over() -> bool:
        rows = Execution.objects.filter(pk__in=held).values_list("pk", "fence", "status")
        return all(fence > held[str(pk)] or status in FINAL_STATUSES for pk, fence, status in rows)

    deadline = time.monotonic() + wait_s
    while not taken_over() and time.monotonic() < deadline:
        time.sleep(0.2)
    event.what += f" ({len(held)} held, taken over: {taken_over()})"
    if not taken_over():  # what held them up, for the report
        from django.db import connection

        fields = ("pk", "fence", "status", "lease_until", "due_at", "nudged_at")
        event.what += f"\n  held: {list(Execution.objects.filter(pk__in=held).values_list(*fields))}"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, wait_event_type, left(query, 120) FROM pg_stat_activity"
                " WHERE datname = current_database() AND state <> 'idle'"
            )
            event.what += f"\n  sessions: {cursor.fetchall()}"
    h.pool.kill(proc, signal.SIGCONT, wait=0)  # it wakes with its old fence: every write it tries must miss
    return [event]


def broker_flush(h: Harness) -> list[FaultEvent]:
    """Lose the queue: FLUSHDB on the Redis database of the broker, or TRUNCATE the ORM broker's table."""
    states = dict(Counter(Execution.objects.exclude(status__in=FINAL_STATUSES).values_list("status", flat=True)))
    if h.redis_url:
        import redis

        redis.Redis.from_url(h.redis_url).flushdb()
        what = "Redis FLUSHDB"
    else:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE django_q_ormq")
        what = "TRUNCATE django_q_ormq"
    return [FaultEvent(time.time(), f"{what} with {states}", 0)]


def every_state_present(h: Harness) -> bool:
    present = set(Execution.objects.values_list("status", flat=True).distinct())
    return {"PENDING", "RUNNING", "WAITING", "SLEEPING"} <= present


def cut_connections(seconds: float, every_s: float = 0.5) -> Callable[[Harness], list[FaultEvent]]:
    """Terminate every session on Trama's database (but ours and the observer's) every ``every_s`` for ``seconds``.

    A worker whose session is cut between its call and its write cannot write: that call may go out again.
    Its claim still holds the lease after the cut, so the distinct claims (execution, fence) seen holding
    a lease after the passes bound the calls that may be duplicated, one each.
    """

    def hit(h: Harness) -> list[FaultEvent]:
        import psycopg
        from django.db import connection

        settings_dict = connection.settings_dict
        kwargs = {k: settings_dict[K] for k, K in (("dbname", "NAME"), ("user", "USER"), ("host", "HOST"))}
        kwargs |= {"port": settings_dict.get("PORT") or 5432, "password": settings_dict.get("PASSWORD") or None}
        claims: set[tuple[str, int]] = set()
        passes, sessions, at, end = 0, 0, time.time(), time.monotonic() + seconds
        with psycopg.connect(**kwargs, autocommit=True) as killer:
            while time.monotonic() < end:
                cut = killer.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s"
                    " AND pid <> pg_backend_pid() AND pid <> %s",
                    [settings_dict["NAME"], h.observer_pid or 0],
                ).fetchone()[0]
                passes, sessions = passes + 1, sessions + cut
                claims |= set(h.held().items())
                time.sleep(every_s)
        what = f"{passes} passes over {seconds:.0f} s, {sessions} sessions cut"
        return [FaultEvent(at, what, len(claims), {pk for pk, _ in claims})]

    return hit


# --- Running and checking ------------------------------------------------------------------


@dataclass
class Result:
    """One scenario's numbers (see the module docstring)."""

    name: str
    executions: int
    rejected: int = 0
    start_retries: int = 0
    lost: int = 0
    stuck: int = 0
    wrong: int = 0
    extra_calls: int = 0
    in_flight: int = 0
    unexplained: int = 0  # extra calls of executions no fault found held: duplicates nothing excuses
    bad_callbacks: int = 0
    p50_s: float | None = None
    sleep_late_s: tuple[float, float] | None = None  # how late the 1 s sleeps ended: median, max
    seconds: float = 0.0
    faults: list[FaultEvent] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The bar: nothing rejected, lost, stuck or wrong; extra calls only for the calls in flight."""
        failures = (self.rejected, self.lost, self.stuck, self.wrong, self.bad_callbacks, self.unexplained)
        return not any(failures) and self.extra_calls <= self.in_flight

    def row(self) -> str:
        p50 = f"{self.p50_s:.2f}" if self.p50_s is not None else "-"
        late = "{:.2f} / {:.2f}".format(*self.sleep_late_s) if self.sleep_late_s else "-"
        cells = (self.executions, self.rejected, self.lost, self.stuck, self.wrong, self.extra_calls, self.in_flight)
        return (
            f"| {self.name} | "
            + " | ".join(str(c) for c in cells)
            + f" | {p50} | {late} | {'yes' if self.ok else 'NO'} |"
        )


TABLE_HEADER = (
    "| scenario | executions | rejected starts | lost | stuck | wrong outcome | extra calls | in flight at faults "
    "| p50 s (succeeded) | sleep late s p50 / max | bar met |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


class Starter:
    """Starts the planned executions through the API at ``rate`` per second, like a careful client."""

    def __init__(self, h: Harness, planned: list[Planned], rate: float, threads: int = 4):
        self.h, self.planned, self.rate, self.threads = h, planned, rate, threads
        self.accepted: dict[str, Planned] = {}
        self.rejected: list[tuple[Planned, object]] = []
        self.retries = 0
        self._lock = threading.Lock()
        self._run = uuid.uuid4().hex[:8]
        self._thread = threading.Thread(target=self._start_all, name="chaos-starter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()

    def _start_all(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        began = time.monotonic()
        local = threading.local()

        def one(item: Planned) -> None:
            time.sleep(max(0.0, began + item.index / self.rate - time.monotonic()))
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            self._start_one(session, item)

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(one, self.planned))

    def _start_one(self, session: requests.Session, item: Planned, give_up_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {self.h.token}", "Idempotency-Key": f"chaos-{self._run}-{item.index}"}
        body = {"definition": item.definition, "input": item.input}
        deadline, answer = time.monotonic() + give_up_s, None
        while time.monotonic() < deadline:
            try:
                answer = session.post(f"{self.h.web_url}/api/v1/executions/", json=body, headers=headers, timeout=30)
            except requests.RequestException as exc:
                answer = exc
            if isinstance(answer, requests.Response) and answer.status_code < 500:
                break
            with self._lock:
                self.retries += 1
            time.sleep(0.5)
        with self._lock:
            if isinstance(answer, requests.Response) and answer.status_code == 202:
                self.accepted[answer.json()["id"]] = item
            else:
                self.rejected.append((item, getattr(answer, "status_code", answer)))


def run_scenario(
    h: Harness,
    name: str,
    count: int,
    fault: Fault | None = None,
    rate: float = 10.0,
    fail_rate: float = 0.2,
    delay_s: float = 0.2,
    settle_s: float = 90.0,
    max_faults: int | None = 1,
) -> Result:
    """Run ``count`` executions with ``fault``, wait until they are final (or ``settle_s`` passes), check them."""
    began = time.monotonic()
    h.callbacks = CallbackSender()
    script_service(h.service, h.callbacks, delay_s)
    starter = Starter(h, plan(count, fail_rate), rate)
    starter.start()
    faults = _fire(h, fault, starter, max_faults) if fault else []
    starter.join()
    _settle(list(starter.accepted), settle_s)
    h.service.join_callbacks(timeout=1)
    result = check(name, starter, h, faults)
    result.seconds = time.monotonic() - began
    return result


def _fire(h: Harness, fault: Fault, starter: Starter, max_faults: int | None) -> list[FaultEvent]:
    events: list[FaultEvent] = []
    deadline = time.monotonic() + 60
    while not fault.ready(h) and time.monotonic() < deadline:
        time.sleep(0.05)
    for round_ in itertools.count(1):
        events += fault.hit(h)
        if fault.every_s is None or (max_faults is not None and round_ >= max_faults):
            break
        time.sleep(fault.every_s)
        if max_faults is None and not starter.running():
            break  # the long run repeats the fault while executions are being started
    return events


def _settle(ids: list[str], settle_s: float) -> None:
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        if not Execution.objects.filter(pk__in=ids).exclude(status__in=FINAL_STATUSES).exists():
            return
        time.sleep(0.25)


def check(name: str, starter: Starter, h: Harness, faults: list[FaultEvent]) -> Result:
    """Compare the database and the service's log with what the workload intended."""
    accepted = starter.accepted
    result = Result(name, len(starter.planned), rejected=len(starter.rejected), start_retries=starter.retries)
    result.faults, result.in_flight = faults, sum(f.in_flight for f in faults)
    rows = {str(pk): (status, started) for pk, status, started in _rows(accepted)}
    for pk, item in accepted.items():
        status, started = rows.get(pk, (None, None))
        if status is None or started is None:
            result.lost += 1
            result.problems.append(f"lost {pk} ({item.definition} {item.input}): {status}")
        elif status not in FINAL_STATUSES:
            result.stuck += 1
            result.problems.append(f"stuck {pk} ({item.definition} {item.input}): {status}")
        elif status != item.intended:
            result.wrong += 1
            result.problems.append(f"wrong {pk} ({item.definition} {item.input}): {status}, not {item.intended}")
    result.extra_calls, duplicated = extra_calls(h.service, set(accepted))
    held = set().union(*(f.held for f in faults))
    for key, n in duplicated.items():
        excused = key.partition(":")[0] in held
        result.unexplained += 0 if excused else n - 1
        result.problems.append(f"called {n} times: {key}" + ("" if excused else " (not held at any fault)"))
    result.bad_callbacks = sum(1 for answer in h.callbacks.answers if answer not in (200, 202))
    result.problems += [f"rejected start {item.index}: {answer}" for item, answer in starter.rejected]
    result.p50_s = p50_completion(list(accepted))
    result.sleep_late_s = sleep_lateness(list(accepted))
    return result


def _rows(accepted: dict) -> list:
    rows = []
    ids = list(accepted)
    for i in range(0, len(ids), 1000):
        rows += Execution.objects.filter(pk__in=ids[i : i + 1000]).values_list("pk", "status", "started_at")
    return rows


def extra_calls(service: TestService, executions: set[str]) -> tuple[int, dict[str, int]]:
    """Calls beyond one per (execution, node, phase), whatever the attempt, and the keys called more than once."""
    keys = Counter(r.header("Idempotency-Key") for r in service.calls())
    per_node: Counter = Counter()
    for key, n in keys.items():
        execution, _, rest = (key or "").partition(":")
        if execution in executions:
            per_node[(execution, rest.rpartition(":")[0])] += n
    duplicated = {k: n for k, n in keys.items() if n > 1 and (k or "").partition(":")[0] in executions}
    return sum(n - 1 for n in per_node.values()), duplicated


def sleep_lateness(ids: list[str]) -> tuple[float, float] | None:
    """How long after its due time each ``nap`` (a 1 s sleep) ended: median and max seconds."""
    from executions.models import Step

    rows = Step.objects.filter(execution_id__in=ids, node_id="nap", status="succeeded")
    late = [(done - began).total_seconds() - 1.0 for began, done in rows.values_list("started_at", "finished_at")]
    return (statistics.median(late), max(late)) if late else None


def p50_completion(ids: list[str]) -> float | None:
    """Median seconds from creation to the end, over the executions that SUCCEEDED."""
    times = Execution.objects.filter(pk__in=ids, status="SUCCEEDED").values_list("created_at", "finished_at")
    seconds = [(done - created).total_seconds() for created, done in times if done]
    return statistics.median(seconds) if seconds else None
