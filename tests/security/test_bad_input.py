"""Finding 7: bad input to `aiops analyze --alert FILE`.

Each payload below is refused with exit 2 and one line on stderr that names the file and the
problem, and nothing is written (no checkpoint, no registry row). Payloads that are acceptable but
large are kept within the limits: alerts beyond MAX_ALERTS_PER_PAYLOAD are counted in the incident
(never silently dropped), and an annotation is truncated (and says so) before it reaches state.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.models import Alert, Evidence
from tests.conftest import REPO, cli_env, recording

pytestmark = pytest.mark.e2e


def aiops(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interfaces.cli", *args], cwd=REPO, env=cli_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=300)


def _webhook() -> dict:
    return json.loads(recording("crashloop").read_text())["webhook"]


def _with(mutate) -> bytes:
    data = _webhook()
    mutate(data)
    return json.dumps(data).encode()


def _set(path: list, value):
    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


BAD = {
    "invalid-utf8": (json.dumps(_webhook()).encode().replace(b"payments-api", b"pay\xffments", 1), "not valid UTF-8"),
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, "deeper than MAX_JSON_DEPTH"),
    "go-zero-time": (_with(_set(["alerts", 0, "startsAt"], "0001-01-01T00:00:00Z")), "Go's zero time"),
    "ten-megabyte-annotation": (_with(_set(["alerts", 0, "annotations", "description"], "x" * 10_000_000)),
                                "more than MAX_PAYLOAD_BYTES"),
    "newline-in-label": (_with(_set(["alerts", 0, "labels", "service"], "pay\nments")), "newline or control"),
    "control-char-in-label": (_with(_set(["alerts", 0, "labels", "host"], "app-02\x1b[2J")), "newline or control"),
    "bad-label-name": (_with(_set(["alerts", 0, "labels", "bad name"], "x")), "not a Prometheus label name"),
    "huge-integer": (b'{"version": "4", "groupKey": 1' + b"1" * 5000 + b"}", "not usable JSON"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_payloads_exit_2_with_one_line_and_write_nothing(tmp_path, name):
    content, problem = BAD[name]
    alert = tmp_path / f"{name}.json"
    alert.write_bytes(content)
    out = aiops(tmp_path, "analyze", "--alert", str(alert))
    assert out.returncode == 2, (out.returncode, out.stderr[-500:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(alert) in lines[0] and problem in lines[0], out.stderr[-500:]
    assert "Traceback" not in out.stderr
    data_dir = tmp_path / "var"
    assert not (data_dir / "checkpoints.sqlite").exists() and not (data_dir / "incidents.sqlite").exists()


def test_ten_thousand_alerts_are_capped_and_the_rest_counted(tmp_path):
    data = json.loads(recording("disk-full").read_text())["webhook"]
    first = data["alerts"][0]
    first["annotations"] = {"summary": "disk full"}
    data["alerts"] = [{**first, "labels": {**first["labels"], "instance": f"h{i}:9100",
                                           "alertname": "HostOutOfDiskSpace" if i < 9000 else "HostOutOfInodes"}}
                      for i in range(10_000)]
    alert = tmp_path / "many.json"
    alert.write_text(json.dumps(data))
    out = aiops(tmp_path, "analyze", "--alert", str(alert), "--json")
    assert out.returncode == 0, out.stderr[-500:]
    title = json.loads(out.stdout)["title"]
    assert "+9900 more alerts" in title and "HostOutOfDiskSpace (firing) x8900" in title
    assert "HostOutOfInodes (firing) x1000" in title
    assert (tmp_path / "var" / "checkpoints.sqlite").stat().st_size < 5_000_000


def test_a_large_annotation_is_truncated_before_it_reaches_state(tmp_path):
    alert = tmp_path / "large.json"
    alert.write_bytes(_with(_set(["alerts", 0, "annotations", "description"], "y" * 3_000_000)))
    out = aiops(tmp_path, "analyze", "--alert", str(alert), "--json")
    assert out.returncode == 0, out.stderr[-500:]
    assert (tmp_path / "var" / "checkpoints.sqlite").stat().st_size < 1_000_000


def test_models_cap_annotations_and_excerpts():
    a = Alert.model_validate({"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-01-01T00:00:00Z",
                              "annotations": {"description": "z" * 100_000}})
    assert len(a.annotations["description"]) <= 4096 and "truncated" in a.annotations["description"]
    ev = Evidence(id="ev-1", tool="logs", query="q", excerpt="w" * 50_000)
    assert len(ev.excerpt) <= 2000 and "truncated" in ev.excerpt
    naive = Alert.model_validate({"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-01-01T00:00:00"})
    assert naive.starts_at.tzinfo is not None
