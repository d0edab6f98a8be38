"""Child processes started in their own session and stopped by PID."""

from __future__ import annotations

import signal
import subprocess
import threading


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, grace: float = 5.0) -> int | None:
    """Sends `sig`, then SIGKILL after `grace` seconds; returns the exit code,
    or None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


class Processes:
    """Every child process started through it, so all of them are stopped by PID."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []
        self.lock = threading.Lock()

    def start(self, argv, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kw)
        with self.lock:
            self.children.append(proc)
        return proc

    def stop_all(self) -> None:
        with self.lock:
            children, self.children = list(self.children), []
        for proc in reversed(children):
            stop(proc, grace=3.0)
