"""Polling a condition until it holds or a timeout passes."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, step: float = 0.1, what: str = "condition",
               failure: type[Exception] = TimeoutError):
    """Returns the first truthy value of `predicate()`; raises `failure` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise failure(f"timed out after {timeout:.0f}s waiting for {what}")
