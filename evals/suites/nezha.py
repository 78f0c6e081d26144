"""Root-cause localisation on the Nezha (FSE'23) labelled microservice faults, through the product.

For every fault of `nezha-rca/cases.csv` for one system and date, an Alertmanager v4 webhook is built
for an alert that fires 2 minutes after the injection ("anomaly in <system>": it names no service),
and the product's own incident graph (`graphs.incident.investigate`: triage -> diagnosis -> planning,
nothing executed) investigates it with a toolbox whose metrics are the recorded per-pod CSVs bounded
at the alert time (no future data). Its ranked hypotheses are scored against `root_cause_service`
with AS@1/3/5. The ground truth is read only by the scorer, after the investigation returned.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.models import Alert, AlertmanagerWebhook
from core.settings import SettingsError, get_settings
from evals.prometheus_backfill import backfilled_prometheus
from evals.report import write_report
from evals.score import accuracy_at_k, rank_of
from evals.suites.nezha_baselines import available_methods, run_baselines
from tools.metrics.prometheus import PrometheusSource
from tools.metrics.recorded import RecordedMetricsSource

SUITE = "nezha"
ALERT_DELAY = timedelta(minutes=2)
KS = (1, 3, 5)


class NezhaCase(BaseModel):
    case_id: str
    system: str
    date: str
    inject_time: datetime
    fault_type: str
    root_cause_service: str  # the label: only the scorer reads it

    @property
    def alert_time(self) -> datetime:
        return self.inject_time + ALERT_DELAY


def load_cases(data_dir: Path, system: str, date: str) -> list[NezhaCase]:
    path = data_dir / "nezha-rca" / "cases.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (pass --data DIR, the shared datasets folder)")
    out = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["system"] != system or row["date"] != date:
                continue
            inject = datetime.fromisoformat(row["inject_time_utc"]).replace(tzinfo=UTC)
            out.append(NezhaCase(case_id=row["case_id"], system=system, date=date, inject_time=inject,
                                 fault_type=row["fault_type"], root_cause_service=row["root_cause_service"]))
    return sorted(out, key=lambda c: c.inject_time)


def build_webhook(case: NezhaCase) -> AlertmanagerWebhook:
    """What Alertmanager would POST for a system-level anomaly alert: it does not name the culprit."""
    labels = {"alertname": "ServiceAnomaly", "system": case.system, "severity": "warning"}
    alert = Alert(status="firing", labels=labels,
                  annotations={"summary": f"anomaly in {case.system}",
                               "description": f"service-level indicators of {case.system} deviate from normal"},
                  startsAt=case.alert_time, generatorURL="")
    return AlertmanagerWebhook(groupKey=f'{{}}:{{alertname="ServiceAnomaly", system="{case.system}"}}',
                               status="firing", receiver="aiops",
                               groupLabels={"alertname": "ServiceAnomaly"}, commonLabels=labels,
                               commonAnnotations=dict(alert.annotations), alerts=[alert])


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]  # type: ignore[func-returns-value]


def _metrics_for(case: NezhaCase, recording: RecordedMetricsSource, settings: Any) -> Any:
    """The recording bounded at the alert time, or, when PROMETHEUS_URL is set (`--prometheus`), the live
    Prometheus holding the backfilled day, bounded the same way (no future data either way)."""
    if settings.PROMETHEUS_URL:
        return PrometheusSource.from_settings(settings, now=case.alert_time)
    return recording.at(case.alert_time)


async def investigate_case(case: NezhaCase, recording: RecordedMetricsSource,
                            call_graph: dict[str, list[str]] | None, llm: Any, settings: Any) -> dict[str, Any]:
    from agents.toolbox import Toolbox
    from graphs.incident import investigate

    toolbox = Toolbox(metrics=_metrics_for(case, recording, settings), logs=None, call_graph=call_graph,
                      now=case.alert_time, llm=llm, memory=None, settings=settings,
                      source_spec={"kind": "eval", "suite": SUITE, "case": case.case_id})
    started = time.perf_counter()
    report = await investigate(build_webhook(case), toolbox)
    ranking = _dedupe([h.component for h in report.hypotheses])
    rank = rank_of(case.root_cause_service, ranking)
    return {
        "case_id": case.case_id, "system": case.system, "fault_type": case.fault_type,
        "alert_time": case.alert_time.isoformat(), "truth": case.root_cause_service,
        "ranking": ranking, "rank": rank, "status": str(report.status),
        "top_cause": report.hypotheses[0].cause if report.hypotheses else "",
        "llm_calls": len(report.llm_calls),
        "tokens": sum(c.input_tokens + c.output_tokens for c in report.llm_calls),
        "input_tokens": sum(c.input_tokens for c in report.llm_calls),
        "output_tokens": sum(c.output_tokens for c in report.llm_calls),
        "llm_calls_by_node": dict(Counter(c.node for c in report.llm_calls)),
        "llm_calls_failed": sum(1 for c in report.llm_calls if not c.ok),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _group_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ranks = [r["rank"] for r in rows]
    return {"cases": len(rows), **{f"as@{k}": round(accuracy_at_k(ranks, k), 4) for k in KS}}


def published(data_dir: Path, system: str) -> list[dict[str, Any]]:
    """Published AS@k on the same cases (Nezha FSE'23 Table 3), for the table; empty if unavailable."""
    path = data_dir / "published-results" / "nezha_fse23_table3_service_level.csv"
    prefix = {"onlineboutique": "OB", "trainticket": "TT"}.get(system)
    if prefix is None or not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [{"approach": r["approach"], "modality": r["modality"],
                 **{f"as@{k}": round(float(r[f"{prefix}_AS@{k}"]) / 100, 4) for k in KS}}
                for r in csv.DictReader(fh)]


def windows(cases: list[NezhaCase]) -> dict[str, tuple[datetime, datetime, datetime]]:
    """aiops' (baseline start, window start, end) per case: what the baselines get too."""
    from agents.diagnosis import BASELINE_WINDOW, DETECT_WINDOW

    return {c.case_id: (c.alert_time - DETECT_WINDOW - BASELINE_WINDOW, c.alert_time - DETECT_WINDOW, c.alert_time)
            for c in cases}


async def run_async(data_dir: Path, system: str, date: str, *, llm: Any = None, settings: Any = None,
                    limit: int | None = None, prometheus: bool = False, baselines: bool = False) -> dict[str, Any]:
    """Investigate every case; `prometheus`: backfill the day into a real Prometheus (promtool) and
    diagnose through PROMETHEUS_URL; `baselines`: run RCAEval's methods on the same cases and windows."""
    from core.llm import LLMChain

    settings = settings or get_settings()
    llm = llm if llm is not None else LLMChain([])
    cases = load_cases(data_dir, system, date)
    if not cases:
        raise ValueError(f"no cases for system {system!r} on {date!r} in {data_dir / 'nezha-rca' / 'cases.csv'}")
    if limit:
        cases = cases[:limit]
    recording = RecordedMetricsSource.nezha(data_dir, system, date)
    call_graph = recording.call_graph()
    spans = windows(cases)
    metrics_path = "recorded"
    started = time.perf_counter()
    if prometheus:
        first = min(w[0] for w in spans.values()) - timedelta(minutes=5)
        last = max(w[2] for w in spans.values()) + timedelta(minutes=15)  # after the alerts: `now` must hide it
        with backfilled_prometheus(recording, first, last) as url:
            live = settings.model_copy(update={"PROMETHEUS_URL": url})
            rows = [await investigate_case(c, recording, call_graph, llm, live) for c in cases]
        metrics_path = "prometheus (promtool backfill, PROMETHEUS_URL)"
    else:
        if settings.PROMETHEUS_URL:  # the recorded path is asked for: a configured Prometheus is not it
            settings = settings.model_copy(update={"PROMETHEUS_URL": None})
        rows = [await investigate_case(c, recording, call_graph, llm, settings) for c in cases]
    seconds = round(time.perf_counter() - started, 2)
    by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_fault[r["fault_type"]].append(r)
    overall = _group_scores(rows)
    report = {
        "suite": SUITE, "mode": llm.mode, "system": system, "date": date, "cases": len(rows),
        "metrics": metrics_path,
        "as@1": overall["as@1"], "as@3": overall["as@3"], "as@5": overall["as@5"],
        "by_fault_type": {k: _group_scores(v) for k, v in sorted(by_fault.items())},
        "by_system": {system: overall},
        "call_graph": bool(call_graph),
        "per_case": rows,
        "llm_calls": sum(r["llm_calls"] for r in rows), "tokens": sum(r["tokens"] for r in rows),
        "seconds": seconds,
        "published": published(data_dir, system),
    }
    if baselines:
        methods = available_methods()
        if not methods:
            raise ValueError("--baselines needs RCAEval: pip install -e '.[baselines]'")
        report["baselines"] = run_baselines(cases, recording, spans, methods)
    return report


def run(data_dir: Path, system: str, date: str, **kw: Any) -> dict[str, Any]:
    return asyncio.run(run_async(data_dir, system, date, **kw))


def summary_table(report: dict[str, Any]) -> str:
    lines = [f"nezha {report['system']} {report['date']}: {report['cases']} cases, mode {report['mode']}, "
             f"metrics {report.get('metrics', 'recorded')}, {report['seconds']} s, {report['llm_calls']} LLM calls, "
             f"{report['tokens']} tokens", ""]
    lines.append(f"{'case':26} {'fault':15} {'truth':30} {'rank':>4}  top-3")
    for r in report["per_case"]:
        rank = "-" if r["rank"] is None else str(r["rank"])
        lines.append(f"{r['case_id']:26} {r['fault_type']:15} {r['truth']:30} {rank:>4}  "
                     f"{', '.join(r['ranking'][:3])}")
    lines += ["", f"{'group':34} {'cases':>5} {'AS@1':>6} {'AS@3':>6} {'AS@5':>6}"]
    groups = [("all (this run)", report)] + [(f"  {k}", v) for k, v in report["by_fault_type"].items()]
    for name, g in groups:
        lines.append(f"{name:34} {g['cases']:>5} {g['as@1']:>6.3f} {g['as@3']:>6.3f} {g['as@5']:>6.3f}")
    if report.get("baselines"):
        lines += ["", baseline_table(report)]
    if report.get("published"):
        lines += ["", "published on the same system (Nezha FSE'23, Table 3; all dates of the system):"]
        for p in report["published"]:
            lines.append(f"  {p['approach'] + ' (' + p['modality'] + ')':32} {'':>5} "
                         f"{p['as@1']:>6.3f} {p['as@3']:>6.3f} {p['as@5']:>6.3f}")
    return "\n".join(lines)


def baseline_table(report: dict[str, Any]) -> str:
    """aiops and RCAEval's methods on the same cases, windows and scorer: AS@1/3/5 and AS@1 per fault type."""
    faults = sorted(report["by_fault_type"])
    head = f"{'approach (same cases, windows, scorer)':40} {'AS@1':>6} {'AS@3':>6} {'AS@5':>6}  " + " ".join(
        f"{f[:14]:>14}" for f in faults) + f"  {'s':>7}"
    rows = [("aiops (rules)" if report["mode"] == "rules" else f"aiops ({report['mode']})", report,
             report["seconds"], "")]
    rows += [(f"RCAEval {b['approach']}", b, b["seconds"], b.get("note", "")) for b in report["baselines"]]
    lines = ["AS@1 per fault type in the columns after AS@5", head]
    for name, g, secs, note in rows:
        per = " ".join(f"{g['by_fault_type'][f]['as@1']:>14.3f}" if f in g["by_fault_type"] else f"{'-':>14}"
                       for f in faults)
        lines.append(f"{name:40} {g['as@1']:>6.3f} {g['as@3']:>6.3f} {g['as@5']:>6.3f}  {per}  {secs:>7.1f}"
                     + (f"  ({note})" if note else ""))
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aiops eval nezha", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="datasets folder (default: $DATASETS_DIR or ../shared/datasets)")
    parser.add_argument("--system", default="onlineboutique", help="onlineboutique | trainticket")
    parser.add_argument("--date", default="2022-08-22", help="a date with telemetry, e.g. 2022-08-22")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--mode", choices=("rules", "llm"), default="rules",
                        help="rules (default) or llm: the provider chain from settings (OPENAI_*/OLLAMA_*)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases (smoke runs)")
    parser.add_argument("--prometheus", action="store_true",
                        help="backfill the day into a throw-away Prometheus (promtool) and diagnose through "
                             "PROMETHEUS_URL instead of reading the recording directly")
    parser.add_argument("--baselines", action="store_true",
                        help="also run RCAEval's BARO, N-Sigma and CIRCA on the same cases and windows "
                             "(pip install -e '.[baselines]')")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data_dir = args.data if args.data is not None else Path(settings.DATASETS_DIR)  # as evals.datasets.data_dir
    if not (data_dir / "nezha-rca").is_dir():
        print(f"error: {data_dir / 'nezha-rca'} not found (pass --data DIR)", file=sys.stderr)
        return 2
    llm = None
    if args.mode == "llm":
        from core.llm import build_llm_chain

        llm = build_llm_chain(settings)
        if not llm.providers:
            print("error: --mode llm but no LLM is configured (OPENAI_API_KEY/OPENAI_BASE_URL or "
                  "OLLAMA_BASE_URL, and LLM_MODE not 'rules')", file=sys.stderr)
            return 2
    try:
        report = run(data_dir, args.system, args.date, llm=llm, settings=settings, limit=args.limit,
                     prometheus=args.prometheus, baselines=args.baselines)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))

    return 0 if write_report(args.out, report) else 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli(sys.argv[1:]))
