"""Test infrastructure: a scriptable HTTP service, real worker processes, polling helpers."""

from tests.support.service import Callback, Recorded, Reply, TestService
from tests.support.waiting import wait_until
from tests.support.workers import WorkerPool, database_url

__all__ = ["Callback", "Recorded", "Reply", "TestService", "WorkerPool", "database_url", "wait_until"]
