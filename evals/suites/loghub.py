"""`aiops eval loghub`: log template mining and BGL line-level anomaly detection on Loghub-2k.

For each of the 14 Loghub-2.0 systems this reads `loghub-2k/<Sys>/<Sys>_2k.log`, cuts each line's
header off with the system's log format (as Loghub's benchmark does, giving the `Content` field), mines
templates with the product's own parser (`tools.analysis.log_templates.mine_templates`) and scores the
grouping against `<Sys>_2k.log_structured_corrected.csv` with GA and FGA (`evals.score`). The ground
truth is only read for scoring, never at parse time.

Per-system *variable masks* below are the customary benchmark preprocessing (Loghub ships a regex list
per system for every parser); they name variable shapes (host:port, byte counts, durations), not
answers. The parser settings are one global setting for all systems.

BGL anomaly detection flags lines with `tools.analysis.log_templates.line_anomalies` (a rule on the
level and message taken from the raw line) and scores them against the `Label` column ('-' = normal).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from pathlib import Path
from typing import Any

from core.settings import SettingsError
from evals.datasets import data_dir
from evals.report import write_report
from evals.score import binary_scores, grouping_scores
from tools.analysis.drain import DEFAULT_MASKS
from tools.analysis.log_templates import line_anomalies, mine_templates

SYSTEMS = ("Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux", "Mac", "OpenSSH", "OpenStack",
           "Proxifier", "Spark", "Thunderbird", "Zookeeper")

# Header layouts: `<Field>` is a named field, everything else is literal (runs of spaces match \s+).
LOG_FORMATS: dict[str, str] = {
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "BGL": "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    "HDFS": "<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "HPC": "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "HealthApp": r"<Time>\|<Component>\|<Pid>\|<Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "Mac": r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "Spark": "<Date> <Time> <Level> <Component>: <Content>",
    "Thunderbird": r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> "
                   r"<Component>(\[<PID>\])?: <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
}

# Extra variable masks, applied before the generic ones (tools.analysis.drain.DEFAULT_MASKS).
SYSTEM_MASKS: dict[str, list[tuple[str, str]]] = {
    "Linux": [
        (r"(?<=\s)\([\w.-]*\)(?=\s)", "<*>"),  # "(host.example.com)" or "()": a resolved peer name
    ],
    "OpenStack": [
        (r"\"(GET|POST|PUT|DELETE|HEAD|PATCH) \S+ HTTP/[\d.]+\"", r'"\1 <*>"'),  # request line: URL + version
        (r"((\d{1,3}\.){3}\d{1,3},?)+", "<*>"),  # comma-joined forwarded-for IP lists
    ],
    "Proxifier": [
        (r"(?<![\w.:])\d{1,2}:\d{2}(:\d{2})?(?![\w.:])", "<*>"),  # lifetime hh:mm[:ss]
        (r"[\w.-]+:\d+", "<*>"),  # host:port
        (r"\d+ bytes( \(\d+(\.\d+)? [KMGT]?B\))?", "<*>"),  # "123 bytes (1.2 KB)"
        (r"<\d+ sec", "<*>"),  # lifetime "<1 sec"
        (r"([\w-]+\.)+[\w-]+", "<*>"),  # host names
    ],
}

PARSER_SETTINGS = {"sim_threshold": 0.6, "depth": 4, "merge_min_values": 4}


def format_regex(log_format: str) -> re.Pattern[str]:
    """`<Date> <Time> <Content>` -> a regex with one named group per field (Loghub's convention)."""
    out = []
    for i, part in enumerate(re.split(r"(<[^<>]+>)", log_format)):
        if i % 2:
            out.append(f"(?P<{part[1:-1]}>.*?)")
        else:
            out.append(re.sub(" +", r"\\s+", part))
    return re.compile("^" + "".join(out) + "$")


def load_system(data: Path, system: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Header-split raw lines and the corrected ground-truth rows of one system."""
    folder = data / "loghub-2k" / system
    raw_path, truth_path = folder / f"{system}_2k.log", folder / f"{system}_2k.log_structured_corrected.csv"
    for p in (raw_path, truth_path):
        if not p.is_file():
            raise FileNotFoundError(f"missing {p}")
    pattern = format_regex(LOG_FORMATS[system])
    fields = []
    for n, line in enumerate(raw_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = pattern.match(line.strip())
        if m is None:
            raise ValueError(f"{raw_path}:{n}: line does not match the {system} log format")
        fields.append({k: (v or "") for k, v in m.groupdict().items()})
    with truth_path.open(encoding="utf-8", newline="") as fh:
        truth = list(csv.DictReader(fh))
    if len(truth) != len(fields):
        raise ValueError(f"{system}: {len(fields)} raw lines but {len(truth)} ground-truth rows")
    return fields, truth


def load_published(data: Path) -> dict[str, dict[str, float]]:
    """Drain's published Loghub-2k GA/FGA (corrected ground truth), keyed by system."""
    path = data / "loghub-2k" / "published" / "loghub2.0_RQ2_effectiveness_results.csv"
    out: dict[str, dict[str, float]] = {}
    if not path.is_file():
        return out
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row.get("dataset+metrics", "")
            cell = row.get("Drain", "")
            parts = name.rsplit(" ", 1)
            if len(parts) != 2 or parts[1] not in ("GA", "FGA"):
                continue
            try:
                value = float(cell.split("/")[0])
            except ValueError:
                continue
            out.setdefault(parts[0], {})[parts[1].lower()] = value
    return out


def eval_system(data: Path, system: str) -> dict[str, Any]:
    fields, truth = load_system(data, system)
    masks = [*SYSTEM_MASKS.get(system, []), *DEFAULT_MASKS]
    t0 = time.perf_counter()
    parsed = mine_templates([f["Content"] for f in fields], masks=masks, **PARSER_SETTINGS)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    score = grouping_scores([row.get("EventTemplate") or None for row in truth], parsed)
    row: dict[str, Any] = {"system": system, **score.model_dump(), "parse_seconds": round(seconds, 3)}
    if system == "BGL":
        predicted = line_anomalies([f.get("Level", "") for f in fields], [f["Content"] for f in fields])
        labels = [row_t.get("Label", "-") != "-" for row_t in truth]
        row["anomaly"] = binary_scores(labels, predicted).model_dump()
    return row


def run(data: Path, systems: tuple[str, ...] = SYSTEMS) -> dict[str, Any]:
    t0 = time.perf_counter()
    published = load_published(data)
    rows = [eval_system(data, s) for s in systems]
    for r in rows:
        pub = published.get(r["system"], {})
        r["published_drain_ga"] = pub.get("ga")
        r["published_drain_fga"] = pub.get("fga")
    bgl = next((r["anomaly"] for r in rows if "anomaly" in r), None)
    n = len(rows)
    report: dict[str, Any] = {
        "suite": "loghub",
        "mode": "rules",
        "cases": n,
        "ga_mean": round(sum(r["ga"] for r in rows) / n, 4) if n else 0.0,
        "fga_mean": round(sum(r["fga"] for r in rows) / n, 4) if n else 0.0,
        "bgl_precision": round(bgl["precision"], 4) if bgl else None,
        "bgl_recall": round(bgl["recall"], 4) if bgl else None,
        "bgl_f1": round(bgl["f1"], 4) if bgl else None,
        "by_system": {r["system"]: {"ga": round(r["ga"], 4), "fga": round(r["fga"], 4)} for r in rows},
        "per_case": rows,
        "parser": {**PARSER_SETTINGS, "system_masks": sorted(SYSTEM_MASKS)},
        "anomaly_method": "severe level (FATAL/FAILURE/CRITICAL/...) and not a register/status dump line",
        "llm_calls": 0,
        "tokens": 0,
        "seconds": 0.0,
    }
    pubs = [r for r in rows if r["published_drain_ga"] is not None]
    if pubs and len(pubs) == n:
        report["published_drain_ga_mean"] = round(sum(r["published_drain_ga"] for r in rows) / n, 4)
        report["published_drain_fga_mean"] = round(sum(r["published_drain_fga"] for r in rows) / n, 4)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report


def _fmt(v: float | None) -> str:
    return "  -  " if v is None else f"{v:.3f}"


def summary_table(report: dict[str, Any]) -> str:
    lines = [f"{'system':<12} {'GA':>6} {'FGA':>6} {'Drain GA':>9} {'Drain FGA':>10} {'groups':>9}"]
    for r in report["per_case"]:
        lines.append(
            f"{r['system']:<12} {r['ga']:>6.3f} {r['fga']:>6.3f} {_fmt(r['published_drain_ga']):>9} "
            f"{_fmt(r['published_drain_fga']):>10} {r['parsed_groups']:>4}/{r['truth_groups']:<4}"
        )
    lines.append(
        f"{'mean':<12} {report['ga_mean']:>6.3f} {report['fga_mean']:>6.3f} "
        f"{_fmt(report.get('published_drain_ga_mean')):>9} {_fmt(report.get('published_drain_fga_mean')):>10}"
    )
    if report["bgl_f1"] is not None:
        lines.append(
            f"BGL line anomalies: precision {report['bgl_precision']:.3f} recall {report['bgl_recall']:.3f} "
            f"F1 {report['bgl_f1']:.3f}"
        )
    lines.append(f"cases {report['cases']}  llm_calls 0  tokens 0  seconds {report['seconds']:.2f}")
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aiops eval loghub", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="datasets folder (default: $DATASETS_DIR or ../shared/datasets)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of systems")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    unknown = [s for s in systems if s not in LOG_FORMATS]
    if unknown or not systems:
        print(f"error: unknown system(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SYSTEMS)}",
              file=sys.stderr)
        return 2

    try:
        args.data = data_dir(args.data)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (args.data / "loghub-2k").is_dir():
        print(f"error: {args.data / 'loghub-2k'} not found (pass --data DIR)", file=sys.stderr)
        return 2
    try:
        report = run(args.data, systems)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))

    return 0 if write_report(args.out, report) else 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli(sys.argv[1:]))
