"""Polling helper for tests that wait on other threads or processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, message: str = "") -> T:
    """Call ``predicate`` until it returns something truthy and return that value.

    Raises AssertionError (with ``message`` and the last value seen) when ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting: {message or predicate!r} (last value: {value!r})"
            )
        time.sleep(interval)
