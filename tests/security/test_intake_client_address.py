"""Requests an intake process passes on keep their client's address (who may call what depends on it),
and nobody reaching the service over TCP can claim another address with the intake's header."""

from __future__ import annotations

import asyncio
from typing import Any

from interfaces.api.intake_processes import CLIENT_HEADER, IntakeClient


def _client_seen(scope: dict[str, Any]) -> Any:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["client"] = scope.get("client")

    asyncio.run(IntakeClient(app)(scope, None, None))  # type: ignore[arg-type]
    return seen["client"]


def test_a_tcp_client_cannot_claim_to_be_local() -> None:
    scope = {"type": "http", "client": ("203.0.113.7", 5555), "server": ("0.0.0.0", 8000),
             "headers": [(CLIENT_HEADER, b"127.0.0.1:1")]}
    assert _client_seen(scope) == ("203.0.113.7", 5555)


def test_the_service_socket_takes_the_client_the_intake_process_names() -> None:
    scope = {"type": "http", "client": None, "server": ("/tmp/aiops-serve-x/service.sock", None),
             "headers": [(CLIENT_HEADER, b"203.0.113.7:5555")]}
    assert _client_seen(scope) == ("203.0.113.7", 5555)


def test_without_the_header_the_service_socket_names_nobody() -> None:
    scope = {"type": "http", "client": None, "server": ("/tmp/aiops-serve-x/service.sock", None), "headers": []}
    assert _client_seen(scope) is None
