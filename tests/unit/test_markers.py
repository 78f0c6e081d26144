"""The fast selection stays fast: a test outside tests/integration, tests/e2e and tests/faults (and not
marked integration/e2e) may not start a server; `make test-fast` runs exactly those tests."""

from __future__ import annotations

import pytest

from tests.servers import AiopsProcess, pg_database, start_prometheus, start_redis


def test_this_test_is_marked_unit(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert not any(request.node.get_closest_marker(m) for m in ("integration", "e2e", "faults"))


@pytest.mark.parametrize("start", [start_redis, start_prometheus, pg_database])
def test_a_fast_test_cannot_start_a_server(start, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="marked as a fast test"), start():
        pass


def test_a_fast_test_cannot_start_aiops_serve(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="starts aiops serve"):
        AiopsProcess(["serve"], {}, tmp_path / "serve.log")
