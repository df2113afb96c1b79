"""Test infrastructure, the one home of every helper the tests share.

- ``service``: a scriptable HTTP service (the user's service Trama calls); ``workers``: real
  qcluster / timer / gunicorn processes; ``waiting``: polling; ``otlp``: a span receiver.
- ``specs``: builders of normalized specs (``req``, ``task``, ``retry``, ``chain``, ...);
  ``definitions``: stored Definition rows (``DefinitionFactory``, ``store``);
  ``engine``: drive an execution with the real worker code and read its history.
- ``browser``: the UI's browser tests (headless Chromium through Playwright; fixtures in
  tests/conftest.py).
- ``machine``: feed the pure state machine events (tests/machine/); ``commands``: run management
  commands (tests/commands/); ``chaos``: the fault-injection workload and its checker.
"""

from tests.support.service import Callback, Recorded, Reply, TestService
from tests.support.waiting import wait_until
from tests.support.workers import WorkerPool, database_url

__all__ = ["Callback", "Recorded", "Reply", "TestService", "WorkerPool", "database_url", "wait_until"]
