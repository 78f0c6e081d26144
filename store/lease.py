"""Who is working on an incident right now, and whether they are still alive.

A process that claims in-flight work (an analysis, or a decision and the execution that follows)
writes an owner `host:pid:starttime` and keeps a heartbeat fresh. Another process that finds the
claim decides it is dead when, on the same host, that pid no longer runs (or is a different process
that reused the pid: its start time differs), or, from any host, when the heartbeat is older than
the lease. The start time makes pid reuse harmless; the lease covers owners on other machines.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from core.models import utcnow

HEARTBEAT_SECONDS = 5.0
LEASE_SECONDS = 60.0


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot); None when the process is gone or a zombie."""
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one short read
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may contain spaces and parentheses
    if fields[0] in ("Z", "X"):  # exited, not yet reaped by its parent
        return None
    return fields[19]


def this_owner() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '0'}"


def owner_alive(owner: str, heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    now = now or utcnow()
    if heartbeat_at is None or now - heartbeat_at > timedelta(seconds=LEASE_SECONDS):
        return False
    host, _, rest = owner.partition(":")
    pid_s, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_s.isdigit():
        return True  # another machine: only its heartbeat can tell
    pid = int(pid_s)
    if os.path.isdir("/proc"):
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Heartbeat:
    """Calls `beat` every HEARTBEAT_SECONDS from a daemon thread until stopped.

    A thread, not an asyncio task: the graph runs blocking tools (ansible-playbook, PVE task waits)
    that would starve a task on the event loop, and a live owner must never look dead.
    """

    def __init__(self, beat: Callable[[], None], every: float = HEARTBEAT_SECONDS) -> None:
        self._beat, self._every = beat, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiops-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
            except Exception:  # a missed beat is retried; the lease is many beats long
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
