"""Writing eval reports: one JSON file per run, created with its folder; a failure is one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def write_report(path: Path | None, report: dict[str, Any], prog: str = "error") -> bool:
    """Write `report` as JSON to `path` (if given). False, after one line on stderr, if it cannot."""
    if path is None:
        return True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"{prog}: cannot write {path}: {exc}", file=sys.stderr)
        return False
    return True


def finish(table: str, report: dict[str, Any], path: Path | None) -> int:
    """A suite's last step: print its table, write its JSON report; the exit code."""
    print(table)
    return 0 if write_report(path, report) else 2
