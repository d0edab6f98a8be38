"""HTTP status probes of local servers: a receiver's health, a relay's /readyz."""

from __future__ import annotations

import urllib.error
import urllib.request

from support.waiting import wait_until


def http_status(url: str) -> int | None:
    """The status `url` answers within a second, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def readyz(admin_port: int) -> int | None:
    """What the relay's /readyz on `admin_port` answers (200 when ready)."""
    return http_status(f"http://127.0.0.1:{admin_port}/readyz")


def wait_ready(admin_port: int, timeout: float, what: str, failure: type[Exception] = TimeoutError) -> None:
    """Until the relay's /readyz answers 200."""
    wait_until(lambda: readyz(admin_port) == 200, timeout, what=what, failure=failure)
