"""Shared fixtures: isolated settings (tmp data dir, no ambient LLM/servers), recordings, runners."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.llm import LLMChain, Provider
from core.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
# The address an in-process TestClient calls from: a client on this machine, as a local health check or
# the CLI is (the default "testclient" is no address, and the service serves anonymous callers only on
# loopback: interfaces/api/exposure.py).
LOCAL_CLIENT = ("127.0.0.1", 50000)
_AMBIENT = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_BASE_URL", "REDIS_URL", "DATABASE_URL", "PROMETHEUS_URL",
            "ELASTICSEARCH_URL", "MILVUS_URI", "LOG_FILES", "ANSIBLE_INVENTORY", "APPROVERS", "TELEGRAM_TOKEN",
            "AIOPS_DATA_DIR", "CHECKPOINT_DB", "LLM_MODE", "ENABLE_MEMORY", "PROXMOX_HOST", "PROXMOX_TOKEN_NAME",
            "PROXMOX_TOKEN_VALUE", "PROXMOX_CA_BUNDLE", "MIKROTIK_HOST", "MIKROTIK_USER", "MIKROTIK_PASSWORD",
            "ADMIN_CHAT_ID", "TELEGRAM_APPROVER_IDS", "TELEGRAM_API_URL", "ENABLE_EMAIL_NOTIFICATIONS", "SMTP_HOST",
            "SMTP_TO", "ENABLE_SLACK_NOTIFICATIONS", "SLACK_WEBHOOK_URL", "ENABLE_PAGERDUTY", "PAGERDUTY_ROUTING_KEY",
            "NOTIFY_ROUTES")


# Markers by directory, so that `-m` really separates the fast tests from the slow ones (a module may add
# e2e itself: the security tests that drive the CLI as processes do). `make test-fast` runs
# `-m "not integration and not e2e and not faults"`; the fixture below keeps those tests server-free.
SLOW_MARKS = ("integration", "e2e", "faults")
_BY_DIR = {"unit": "unit", "security": "security", "integration": "integration", "e2e": "e2e", "faults": "faults"}
# Longest first (e2e, then faults, integration): the two xdist workers finish on short tests, not on a
# two-minute one that started last.
_ORDER = {"e2e": 0, "faults": 1, "integration": 2, "security": 3, "unit": 4}


def _folder(item: pytest.Item) -> str:
    parts = Path(str(item.fspath)).resolve().relative_to(REPO / "tests").parts
    return parts[0] if len(parts) > 1 else ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        mark = _BY_DIR.get(_folder(item))
        if mark:
            item.add_marker(mark)
    items.sort(key=lambda item: _ORDER.get(_folder(item), 5))  # stable: file order within a folder


@pytest.fixture(autouse=True)
def _fast_tests_start_no_server(request: pytest.FixtureRequest) -> Iterator[None]:
    from tests import servers

    slow = any(request.node.get_closest_marker(m) for m in SLOW_MARKS)
    servers.FAST_TEST = None if slow else request.node.nodeid
    try:
        yield
    finally:
        servers.FAST_TEST = None


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in _AMBIENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path / "var"))
    # Memory (milvus-lite + embeddings) costs seconds per data dir: tests that need it turn it on.
    monkeypatch.setenv("ENABLE_MEMORY", "false")
    from core import resilience
    from core.settings import get_settings

    get_settings.cache_clear()
    resilience.reset()  # breakers are process-wide: one test's dead server must not open the next one's


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False)


def scripted_chain(model: object, name: str = "scripted-1") -> LLMChain:
    return LLMChain([Provider("scripted", name, model, "llm-scripted")])  # type: ignore[arg-type]


def recording(name: str) -> Path:
    return REPO / "tools" / "replay" / "incidents" / f"{name}.json"


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _AMBIENT}
    env.update({"AIOPS_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(REPO), "ENABLE_MEMORY": "false", **extra})
    return env
