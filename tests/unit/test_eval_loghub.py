"""`aiops eval loghub`: CLI contract on a tiny synthetic layout, and a smoke run on two real systems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.suites.loghub import cli, format_regex

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def _write_fake(root: Path) -> None:
    folder = root / "loghub-2k" / "Apache"
    folder.mkdir(parents=True)
    raw, rows = [], ["LineId,Time,Level,Content,EventId,EventTemplate"]
    events = [("notice", "jk2_init() Found child {n} in scoreboard slot {s}", "jk2_init() Found child <*> in scoreboard slot <*>"),
              ("error", "mod_jk child workerEnv in error state {s}", "mod_jk child workerEnv in error state <*>")]
    for i in range(12):
        level, msg, tmpl = events[i % 2]
        content = msg.format(n=1000 + i, s=i % 7)
        raw.append(f"[Sun Dec 04 04:47:{i:02d} 2005] [{level}] {content}")
        rows.append(f"{i + 1},Sun Dec 04 04:47:{i:02d} 2005,{level},{content},E{i % 2},{tmpl}")
    (folder / "Apache_2k.log").write_text("\n".join(raw) + "\n")
    (folder / "Apache_2k.log_structured_corrected.csv").write_text("\n".join(rows) + "\n")


def test_format_regex_extracts_content() -> None:
    m = format_regex(r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>").match(
        "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200")
    assert m is not None and m.group("Content") == "Notification time out: 3200" and m.group("Level") == "INFO"


def test_cli_on_synthetic_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_fake(tmp_path)
    out = tmp_path / "r" / "loghub.json"
    assert cli(["--data", str(tmp_path), "--systems", "Apache", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["suite"] == "loghub" and report["mode"] == "rules" and report["cases"] == 1
    assert report["ga_mean"] == 1.0 and report["fga_mean"] == 1.0 and report["bgl_f1"] is None
    assert report["llm_calls"] == 0 and report["tokens"] == 0 and report["seconds"] >= 0
    assert report["by_system"]["Apache"] == {"ga": 1.0, "fga": 1.0}
    assert report["per_case"][0]["parsed_groups"] == 2
    assert "Apache" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--data", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
    assert cli(["--data", str(tmp_path), "--systems", "Nope"]) == 2
    _write_fake(tmp_path)
    (tmp_path / "loghub-2k" / "Apache" / "Apache_2k.log").write_text("not an apache line\n")
    assert cli(["--data", str(tmp_path), "--systems", "Apache"]) == 2
    assert "does not match" in capsys.readouterr().err


@pytest.mark.skipif(not (DATASETS / "loghub-2k").is_dir(), reason=f"Loghub-2k data not found at {DATASETS}")
def test_smoke_on_two_real_systems(tmp_path: Path) -> None:
    out = tmp_path / "loghub.json"
    assert cli(["--data", str(DATASETS), "--systems", "BGL,OpenSSH", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["cases"] == 2
    by = report["by_system"]
    assert by["BGL"]["ga"] > 0.95 and by["OpenSSH"]["ga"] > 0.95  # measured: 0.979 and 1.000
    assert report["bgl_recall"] > 0.9 and report["bgl_precision"] > 0.5  # measured: 1.000 and 0.619
    row = next(r for r in report["per_case"] if r["system"] == "BGL")
    assert row["published_drain_ga"] == pytest.approx(0.963)
