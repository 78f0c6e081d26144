"""Issue 16, finding 7: a file `aiops serve` cannot use stops it with one line naming the file, exit 2.

Before: a corrupted notify.sqlite was a 25-line traceback out of uvicorn's lifespan; a corrupted
incidents.sqlite or checkpoint file was the right message buried in a traceback; a POLICY_FILE that
is not UTF-8 did not stop the service at all (it failed at the first automatic decision, with a
UnicodeDecodeError that named no file); a TOPOLOGY_FILE that is not UTF-8 was a traceback. The real
CLI runs in a subprocess on a data dir holding the damaged file.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env
from tests.servers import free_port

pytestmark = pytest.mark.e2e

GARBAGE = b"this is not an sqlite file\x00\xff" * 200
NOT_UTF8 = "rules:\n  - {name: caf\xe9, actions: [cleanup_rotated_logs]}\n".encode("latin-1")


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "interfaces.cli", "serve", "--port", str(free_port())]
    try:
        return subprocess.run(cmd, cwd=REPO, env=cli_env(tmp_path, LLM_MODE="rules", **env), capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:  # it started, and kept running, with a file it cannot use
        raise AssertionError(f"aiops serve did not stop: {exc.stderr!r}") from None


def _one_line(out: subprocess.CompletedProcess[str], path: Path) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[0].startswith("aiops: error: ") and str(path) in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("name", "what"), [("notify.sqlite", "notification ledger"),
                                            ("incidents.sqlite", "incident registry"),
                                            ("checkpoints.sqlite", "checkpoints"),
                                            ("queue.sqlite", "queue")])
def test_a_corrupted_store(tmp_path: Path, name: str, what: str) -> None:
    path = tmp_path / "var" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(GARBAGE)
    line = _one_line(serve(tmp_path), path)
    assert what in line and "move it aside" in line
    assert path.read_bytes() == GARBAGE  # the evidence is left as it was
    assert not (tmp_path / "var" / "service.json").exists()


@pytest.mark.parametrize("setting", ["POLICY_FILE", "TOPOLOGY_FILE", "API_TOKENS_FILE"])
def test_a_file_that_is_not_utf8(tmp_path: Path, setting: str) -> None:
    path = tmp_path / "settings-file.yaml"
    path.write_bytes(NOT_UTF8)
    line = _one_line(serve(tmp_path, **{setting: str(path)}), path)
    assert f"{setting} {path} is not valid UTF-8 (byte 0xe9 at offset" in line


def test_a_policy_file_that_is_not_yaml_is_one_line_too(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("rules: [\n  {name: a\n")
    line = _one_line(serve(tmp_path, POLICY_FILE=str(path)), path)
    assert "is not YAML" in line
