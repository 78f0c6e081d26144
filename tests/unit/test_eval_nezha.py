"""The nezha eval suite: webhook shape, no-future replay through the product graph, JSON report, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evals.score import accuracy_at_k, rank_of
from evals.suites import nezha
from tests import fake_nezha

SHARED = Path(os.environ.get("DATASETS_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"))


def test_scoring_helpers() -> None:
    assert rank_of("b", ["a", "b", "b"]) == 2
    assert rank_of("z", ["a"]) is None
    assert accuracy_at_k([1, 3, None, 6], 3) == 0.5
    assert accuracy_at_k([], 1) == 0.0


def test_webhook_fires_two_minutes_after_injection_and_names_no_service(tmp_path: Path) -> None:
    fake_nezha.write_layout(tmp_path)
    (case,) = nezha.load_cases(tmp_path, "onlineboutique", "2022-08-22")
    hook = nezha.build_webhook(case)
    alert = hook.alerts[0]
    assert hook.version == "4" and hook.status == "firing"
    assert alert.starts_at == fake_nezha.ALERT
    assert alert.annotations["summary"] == "anomaly in onlineboutique"
    assert alert.labels == {"alertname": "ServiceAnomaly", "system": "onlineboutique", "severity": "warning"}
    assert "productcatalogservice" not in hook.model_dump_json()


def test_eval_drives_the_product_and_cannot_see_the_future(tmp_path: Path) -> None:
    # the fake layout has a trap: cartservice goes wild after the alert; the culprit must still win
    fake_nezha.write_layout(tmp_path)
    report = nezha.run(tmp_path, "onlineboutique", "2022-08-22")
    (row,) = report["per_case"]
    assert row["truth"] == "productcatalogservice"
    assert row["ranking"][0] == "productcatalogservice" and row["rank"] == 1
    assert report["as@1"] == report["as@3"] == 1.0
    assert report["mode"] == "rules" and report["llm_calls"] == 0
    assert report["by_fault_type"] == {"cpu_contention": {"cases": 1, "as@1": 1.0, "as@3": 1.0, "as@5": 1.0}}


def test_cli_writes_json_and_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake_nezha.write_layout(tmp_path)
    out = tmp_path / "r.json"
    assert nezha.cli(["--data", str(tmp_path), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("suite", "mode", "cases", "as@1", "as@3", "as@5", "by_fault_type", "by_system", "per_case",
                "llm_calls", "tokens", "seconds"):
        assert key in data
    assert "AS@1" in capsys.readouterr().out
    assert nezha.cli(["--data", str(tmp_path / "nope")]) == 2
    assert nezha.cli(["--data", str(tmp_path), "--date", "1999-01-01"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


@pytest.mark.skipif(not (SHARED / "nezha-rca" / "cases.csv").is_file(), reason=f"Nezha dataset not at {SHARED}")
def test_smoke_on_real_cases() -> None:
    report = nezha.run(SHARED, "onlineboutique", "2022-08-22", limit=3)
    assert report["cases"] == 3 and report["call_graph"] is True
    for row in report["per_case"]:
        assert row["ranking"] and row["rank"] is not None


def test_baseline_service_ranking_and_frame_stop_at_the_alert(tmp_path: Path) -> None:
    from evals.suites.nezha_baselines import case_frame, day_frame, service_ranking
    from tools.metrics.recorded import RecordedMetricsSource

    assert service_ranking(["cartservice_cpu", "frontend_mem", "cartservice_mem", "adservice_x"]) == [
        "cartservice", "frontend", "adservice"]
    fake_nezha.write_layout(tmp_path)
    (case,) = nezha.load_cases(tmp_path, "onlineboutique", "2022-08-22")
    baseline_start, _, end = nezha.windows([case])[case.case_id]
    rec = RecordedMetricsSource.nezha(tmp_path, "onlineboutique", "2022-08-22")
    day = day_frame(rec, baseline_start, end + (fake_nezha.TRAP - fake_nezha.ALERT) * 10)
    frame = case_frame(day, baseline_start, end)
    assert frame["time"].max() <= end.timestamp()  # the trap after the alert is not in a baseline's input
    assert frame.columns[0] == "time" and any(c.startswith("productcatalogservice_") for c in frame.columns)


def test_baselines_run_on_the_same_cases_and_are_tabled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evals.suites.nezha_baselines import available_methods

    if not {"baro", "nsigma"} <= set(available_methods()):
        pytest.skip("RCAEval not installed (pip install -e '.[baselines]')")
    fake_nezha.write_layout(tmp_path)
    out = tmp_path / "r.json"
    assert nezha.cli(["--data", str(tmp_path), "--baselines", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = {b["approach"]: b for b in data["baselines"]}
    assert {"baro", "nsigma"} <= set(rows)
    # BARO sees the CPU hog of productcatalogservice in the same window aiops had (no truth, no future)
    assert rows["baro"]["cases"] == 1 and rows["baro"]["as@1"] == 1.0
    table = capsys.readouterr().out
    assert "aiops (rules)" in table and "RCAEval baro" in table and "RCAEval nsigma" in table
