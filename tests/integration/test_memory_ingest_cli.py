"""`aiops memory ...` and `aiops eval runbooks` end to end on small copies of the real corpora."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from memory.cli import cli

pytestmark = pytest.mark.integration

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
needs_data = pytest.mark.skipif(not DATASETS.is_dir(), reason=f"datasets not found at {DATASETS}")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small slice of each corpus, laid out like the originals."""
    root = tmp_path_factory.mktemp("corpus")
    for sub in ("alertmanager", "etcd"):
        shutil.copytree(DATASETS / "prometheus-operator-runbooks/runbooks" / sub, root / "runbooks/runbooks" / sub)
    pm = root / "postmortems/data"
    pm.mkdir(parents=True)
    for path in sorted((DATASETS / "postmortems-icco/data").glob("*.md"))[:12]:
        shutil.copy(path, pm / path.name)
    rules = root / "eval/kube-prometheus-rules"
    rules.mkdir(parents=True)
    shutil.copy(DATASETS / "kube-prometheus-rules/alertmanager-prometheusRule.yaml", rules)
    shutil.copytree(root / "runbooks/runbooks", root / "eval/prometheus-operator-runbooks/runbooks")
    return root


@needs_data
def test_ingest_twice_adds_no_duplicates(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    uri = str(tmp_path / "milvus.db")
    assert cli(["--uri", uri, "ingest-runbooks", str(corpus / "runbooks")]) == 0
    first = capsys.readouterr().out
    assert "14 prometheus-operator" in first and "14 in store" in first
    assert cli(["--uri", uri, "ingest-runbooks", str(corpus / "runbooks")]) == 0
    assert "14 in store" in capsys.readouterr().out
    assert cli(["--uri", uri, "ingest-postmortems", str(corpus / "postmortems")]) == 0
    assert cli(["--uri", uri, "ingest-postmortems", str(corpus / "postmortems")]) == 0
    assert "12 postmortems, 12 upserted, 12 in store" in capsys.readouterr().out.splitlines()[-1]
    assert cli(["--uri", uri, "stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["incidents"] == 12 and stats["runbooks"] == 14
    assert cli(["--uri", uri, "search", "etcd cluster has no leader"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[2] == "etcdNoLeader"


def test_bad_directory_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert cli(["--uri", str(tmp_path / "m.db"), "ingest-runbooks", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    (tmp_path / "empty").mkdir()
    assert cli(["--uri", str(tmp_path / "m.db"), "ingest-postmortems", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no postmortem" in err
    assert cli(["frobnicate"]) == 2


@needs_data
def test_runbooks_eval_on_a_slice(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from evals.suites.runbooks import cli as eval_cli

    out = tmp_path / "report.json"
    assert eval_cli(["--data", str(corpus / "eval"), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["suite"] == "runbooks" and report["mode"] == "hybrid"
    assert report["cases"] == 8 == len(report["per_case"])  # the alertmanager rules that have runbooks
    assert {"top1", "top3", "mrr", "seconds"} <= report.keys()
    assert report["top3"] >= 0.85  # 14 runbooks; the full-corpus numbers are in docs/memory.md
    assert "runbook_url" not in json.dumps(report["per_case"])
    assert "top1=" in capsys.readouterr().out
