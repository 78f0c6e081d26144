"""Schemathesis fuzzing of the service's own OpenAPI schema: no generated input may cause a 5xx.

Runs against a real `aiops serve --no-worker` (API only; valid webhooks are queued, not run) with user
tokens configured, so the generated requests reach the handlers behind authentication. Bounded by
`max_examples` per operation to stay well under a minute. `/api/v1/events` (an endless stream) and
`/health` (which legitimately answers 503 when a component is down) are left out of the generated
cases; /health is exercised by the other service tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from tests.conftest import cli_env  # noqa: E402
from tests.servers import AiopsProcess, aiops_serve  # noqa: E402

pytestmark = pytest.mark.e2e

TOKEN = "fuzz-alice-token-0123456789"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiopsProcess]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    # no worker runs, so `analyze?wait=true` answers 202 "running" after ANALYZE_WAIT_SECONDS
    env = cli_env(tmp, LLM_MODE="rules", API_TOKENS=f"alice:{TOKEN}", WEBHOOK_MAX_BYTES="65536",
                  ANALYZE_WAIT_SECONDS="1")
    with aiops_serve(env, tmp / "serve.log", "--no-worker") as svc:
        yield svc


def test_no_server_error_on_any_generated_input(service: AiopsProcess) -> None:
    """Every operation, `max_examples` generated cases each (schemathesis's hypothesis strategies; its
    pytest plugin is not used because it does not load under pytest 9)."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    fuzzed = [op for op in operations if op.path not in ("/api/v1/events", "/health")]
    assert {"/webhook/alertmanager", "/api/v1/plans/{plan_id}/approve", "/api/v1/analyze"} <= {op.path for op in fuzzed}
    calls = 0

    for operation in fuzzed:
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True, phases=[Phase.explicit, Phase.generate])  # no shrinking: report as found
        @given(case=operation.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal calls
            headers = {"Authorization": f"Bearer {TOKEN}"} if case.path != "/webhook/alertmanager" else {}
            response = case.call(base_url=service.url, headers=headers, timeout=15)
            calls += 1
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                body = response.json()
                assert list(body) == ["detail"] and isinstance(body["detail"], str), body
                assert "\n" not in body["detail"] and "Traceback" not in body["detail"]

        check()
    assert calls >= 5 * len(fuzzed)
