"""Issue 16, finding 1: closed by default.

With no token configured, `aiops serve` listens on 127.0.0.1 only (read from the kernel's socket table,
not from what the service says). Asked to listen anywhere else (`--host`, `API_HOST`) without
WEBHOOK_TOKEN and a reader/user token, it refuses to start with one line naming the variables to set;
`ALLOW_INSECURE_NO_AUTH=true` overrides that and says so at every start. Inside the app, a client off
loopback without a token gets nothing: no alerts in, no incidents, no events, not even /health.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.settings import load_settings
from interfaces.api.app import create_app
from tests.conftest import LOCAL_CLIENT, cli_env, recording
from tests.security.decision_helpers import aiops
from tests.servers import AiopsProcess, free_port

pytestmark = pytest.mark.e2e

WEBHOOK, ALICE = "am-token-0123456789abcdef", "alice-token-0123456789ab"
REMOTE = ("203.0.113.7", 40000)  # a client on the network (TEST-NET-3)


def listening(port: int) -> set[str]:
    """The local addresses the kernel has a listening TCP socket on for `port` (IPv4)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def serve(tmp_path: Path, *args: str, **env: str) -> tuple[AiopsProcess, int]:
    port = free_port()
    proc = AiopsProcess(["serve", "--port", str(port), *args], cli_env(tmp_path, LLM_MODE="rules", **env),
                        tmp_path / f"serve-{port}.log", port)
    return proc.wait_ready(), port


def test_no_token_listens_on_loopback_only(tmp_path: Path) -> None:
    proc, port = serve(tmp_path)
    try:
        assert listening(port) == {"127.0.0.1"}, proc.output()
        assert f"http://127.0.0.1:{port}" in proc.output() and "loopback only" in proc.output()
    finally:
        proc.stop()


def test_tokens_configured_listens_on_api_host_default(tmp_path: Path) -> None:
    proc, port = serve(tmp_path, WEBHOOK_TOKEN=WEBHOOK, API_TOKENS=f"alice:{ALICE}")
    try:
        assert listening(port) == {"0.0.0.0"}, proc.output()
    finally:
        proc.stop()


@pytest.mark.parametrize(("args", "env", "missing"), [
    ([], {"API_HOST": "0.0.0.0"}, ["WEBHOOK_TOKEN", "API_TOKENS"]),
    (["--host", "0.0.0.0"], {}, ["WEBHOOK_TOKEN", "API_TOKENS"]),
    (["--host", "0.0.0.0"], {"WEBHOOK_TOKEN": WEBHOOK}, ["API_TOKENS"]),
    (["--host", "0.0.0.0"], {"API_TOKENS": f"alice:{ALICE}"}, ["WEBHOOK_TOKEN"]),
])
def test_off_loopback_without_tokens_refuses_to_start(tmp_path: Path, args: list[str], env: dict[str, str],
                                                       missing: list[str]) -> None:
    out = aiops(tmp_path, "serve", "--port", str(free_port()), *args, env=env, timeout=120)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("aiops: error: refusing to listen on 0.0.0.0 without authentication")
    assert all(name in lines[0] for name in missing) and "ALLOW_INSECURE_NO_AUTH" in lines[0]
    assert not (tmp_path / "var" / "service.json").exists()  # nothing was started


def test_insecure_override_starts_and_says_so_at_every_start(tmp_path: Path) -> None:
    for _ in range(2):
        proc, port = serve(tmp_path, "--host", "0.0.0.0", ALLOW_INSECURE_NO_AUTH="true")
        try:
            assert listening(port) == {"0.0.0.0"}
            assert "WARNING: ALLOW_INSECURE_NO_AUTH=true: listening on 0.0.0.0 without WEBHOOK_TOKEN" in proc.output()
        finally:
            proc.stop()
        (tmp_path / f"serve-{port}.log").unlink()


def _webhook() -> dict:
    return json.loads(recording("disk-full").read_text())["webhook"]


def _app(tmp_path: Path, **env: str) -> object:
    return create_app(load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False, LLM_MODE="rules", **env),
                      worker=False)


def _events_status(client: TestClient) -> int | None:
    """GET /api/v1/events's status; None when it is being served (an event stream does not end, and the
    in-process client only returns complete responses)."""
    import threading

    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(client.get("/api/v1/events").status_code), daemon=True)
    thread.start()
    thread.join(10)
    return status[0] if status else None


@pytest.mark.parametrize("configured", ["tokens", "none"])
def test_an_anonymous_client_off_loopback_gets_nothing(tmp_path: Path, configured: str) -> None:
    env = {"WEBHOOK_TOKEN": WEBHOOK, "API_TOKENS": f"alice:{ALICE}"} if configured == "tokens" else {}
    with TestClient(_app(tmp_path, **env), client=REMOTE) as remote:  # type: ignore[arg-type]
        calls = [remote.post("/webhook/alertmanager", json=_webhook()), remote.get("/health"), remote.get("/metrics"),
                 remote.get("/api/v1/incidents"), remote.get("/api/v1/plans"),
                 remote.get("/api/v1/dead-letters"), remote.get("/api/v1/self-healing"),
                 remote.post("/api/v1/analyze", json={"service_name": "checkout"}),
                 remote.post("/api/v1/self-healing", json={"enabled": False})]
        assert [c.status_code for c in calls] == [401] * len(calls), [(c.request.url.path, c.text) for c in calls]
        assert all(list(c.json()) == ["detail"] for c in calls)
        assert _events_status(remote) == 401
        if configured == "tokens":  # with a token the same client is served
            assert remote.get("/health", headers={"Authorization": f"Bearer {ALICE}"}).status_code == 200
            assert remote.post("/webhook/alertmanager", json=_webhook(),
                               headers={"Authorization": f"Bearer {WEBHOOK}"}).status_code == 202
    with TestClient(_app(tmp_path / "local", **env), client=LOCAL_CLIENT) as local:  # type: ignore[arg-type]
        assert local.get("/health").status_code == 200  # a local health check needs no token
        if configured == "none":  # a laptop: reads and alerts from this machine
            assert local.get("/api/v1/incidents").status_code == 200
            assert local.post("/webhook/alertmanager", json=_webhook()).status_code == 202


def test_insecure_override_lets_anonymous_clients_in(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path, ALLOW_INSECURE_NO_AUTH="true"), client=REMOTE) as remote:  # type: ignore[arg-type]
        assert remote.get("/api/v1/incidents").status_code == 200
        assert remote.post("/webhook/alertmanager", json=_webhook()).status_code == 202
