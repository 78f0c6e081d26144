"""The commands people and scripts run most load only what they use: listing incidents or asking for help
must not import the agent graph, the web stack, aiogram or Milvus (a list is a registry read)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["langgraph", "fastapi", "aiogram", "pymilvus", "langchain_openai"]
PROBE = """
import json, sys
from interfaces.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exc:  # argparse's --help
    code = exc.code or 0
print(json.dumps({"code": code, "loaded": [m for m in json.loads(sys.argv[1]) if m in sys.modules]}))
"""


@pytest.mark.parametrize("argv", [["incidents"], ["incidents", "--json"], ["--help"]])
def test_light_commands_load_no_heavy_stack(argv: list[str], tmp_path: Path) -> None:
    env = {"AIOPS_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *argv], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    last = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert last, done.stdout + done.stderr
    result = json.loads(last[-1])
    assert result["code"] == 0, done.stderr
    assert result["loaded"] == [], f"`aiops {' '.join(argv)}` imported {result['loaded']}"
