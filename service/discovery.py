"""How the CLI finds a service that owns the data dir (milvus-lite allows one process per file).

A running `aiops serve` holds an exclusive lock on `$AIOPS_DATA_DIR/service.lock` for its whole life
and writes `service.json` (mode 0600: url, pid, and a random local token). The CLI's `analyze`,
`approve`, `reject`, `incidents` and `show` first look here: if the lock is held, they go through the
service's HTTP API with the local token instead of opening the embedded stores themselves. The lock,
not the file, is the truth: a service killed with SIGKILL leaves a stale file but no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from core.settings import Settings

SERVICE_FILE = "service.json"
LOCK_FILE = "service.lock"


class ServiceRunning(RuntimeError):
    """Another `aiops serve` already owns this data dir."""


class ServiceInfo(BaseModel):
    url: str
    pid: int
    token: str


@contextlib.contextmanager
def announce(settings: Settings, url: str) -> Iterator[str]:
    """Own the data dir for the block; yields the local token the CLI will use."""
    data = settings.AIOPS_DATA_DIR
    data.mkdir(parents=True, exist_ok=True)
    lock = (data / LOCK_FILE).open("a+")
    for attempt in range(20):  # a CLI probing the lock holds it shared for microseconds
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 19:
                lock.close()
                running = _read(data / SERVICE_FILE)
                raise ServiceRunning(f"another aiops serve owns {data}"
                                     f"{f' (pid {running.pid}, {running.url})' if running else ''}") from None
            time.sleep(0.05)
    token = secrets.token_urlsafe(32)
    path = data / SERVICE_FILE
    tmp = data / f".{SERVICE_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ServiceInfo(url=url, pid=os.getpid(), token=token).model_dump_json())
    os.replace(tmp, path)
    try:
        yield token
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def find_service(settings: Settings) -> ServiceInfo | None:
    data = settings.AIOPS_DATA_DIR
    lock_path = data / LOCK_FILE
    if not lock_path.exists():
        return None
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(data / SERVICE_FILE)
        fcntl.flock(lock, fcntl.LOCK_UN)
    return None


def _read(path: Path) -> ServiceInfo | None:
    try:
        return ServiceInfo.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
