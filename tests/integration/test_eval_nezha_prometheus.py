"""`aiops eval nezha --prometheus`: the day backfilled with promtool into a real Prometheus, diagnosed
through PROMETHEUS_URL, gives the same ranking as the recorded path (and the Prometheus is gone after)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evals.suites import nezha
from tests import fake_nezha

pytestmark = pytest.mark.integration


def test_prometheus_path_matches_the_recorded_path(tmp_path: Path) -> None:
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        pytest.skip("prometheus/promtool binaries not installed (Debian package `prometheus`)")
    fake_nezha.write_layout(tmp_path)
    recorded = nezha.run(tmp_path, "onlineboutique", "2022-08-22")
    live = nezha.run(tmp_path, "onlineboutique", "2022-08-22", prometheus=True)
    assert live["metrics"].startswith("prometheus") and recorded["metrics"] == "recorded"
    assert [r["ranking"][:3] for r in live["per_case"]] == [r["ranking"][:3] for r in recorded["per_case"]]
    assert live["per_case"][0]["rank"] == 1  # the trap after the alert stays hidden behind `now`
