"""Issue 16, finding 6b: /health is not `healthy` while the queue refuses every write.

A queue store that still answers reads but refuses writes (a full disk under the SQLite queue, Redis
over its maxmemory) turns every webhook into a 503, yet `/health` said `healthy` because it only read.
Now it makes a real write through the queue: unhealthy (503) with the store's own error, and healthy
again once writes go through. The faults are real: a 16 MiB tmpfs filled to the last block (needs
CAP_SYS_ADMIN to mount, else that case is skipped), and a real redis-server told `maxmemory 1`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import LOCAL_CLIENT, recording
from tests.servers import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration


def _webhook() -> dict:
    return json.loads(recording("disk-full").read_text())["webhook"]


def _app(data_dir: Path, **env: str) -> TestClient:
    settings = load_settings(AIOPS_DATA_DIR=data_dir, ENABLE_MEMORY=False, LLM_MODE="rules", **env)
    return TestClient(create_app(settings, worker=False), client=LOCAL_CLIENT)


@contextmanager
def tiny_tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(fs: Path) -> Path:
    """Write zeros until the file system refuses (ENOSPC): every block is taken."""
    filler = fs / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    with filler.open("ab", buffering=0) as f:  # the last partial block too
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def test_full_disk_under_the_sqlite_queue(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "fs") as fs, _app(fs / "var") as c:
        assert c.get("/health").json()["status"] == "healthy"
        filler = fill(fs)
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy", health.text
        queue = health.json()["components"]["queue"]
        assert queue["status"] == "error" and "disk is full" in queue["detail"], queue
        refused = c.post("/webhook/alertmanager", json=_webhook())
        assert refused.status_code == 503 and "queue unavailable" in refused.json()["detail"]
        filler.unlink()
        assert c.get("/health").json()["status"] == "healthy"
        assert c.post("/webhook/alertmanager", json=_webhook()).status_code == 202


def test_redis_over_maxmemory(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    admin = redis.Redis.from_url(redis_server.url)
    with _app(tmp_path / "var", REDIS_URL=redis_server.url) as c:
        assert c.get("/health").json()["status"] == "healthy"
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        try:
            health = c.get("/health")
            assert health.status_code == 503 and health.json()["status"] == "unhealthy", health.text
            assert health.json()["components"]["redis"]["status"] == "ok"  # it answers PING
            assert "used memory > 'maxmemory'" in health.json()["components"]["queue"]["detail"]
            assert c.post("/webhook/alertmanager", json=_webhook()).status_code == 503
        finally:
            admin.config_set("maxmemory", "0")
        assert c.get("/health").json()["status"] == "healthy"
