"""`aiops eval runbooks`: can memory find the right runbook for a real alert, from its text alone?

Cases: every alert rule in `kube-prometheus-rules/` whose name has a runbook of the same name in
`prometheus-operator-runbooks/` (112 rule/runbook pairs; some alert names have several rules, e.g.
the four KubeAPIErrorBudgetBurn windows). Each rule is turned into the alert Alertmanager would
deliver: the rule's labels plus alertname and the labels its expression and annotations imply
(namespace, pod, job, instance, cluster ...) with plausible values, and the annotations with their Go
templates (`{{ $labels.x }}`, `{{ $value | humanizePercentage }}`, `{{ with ... }}`) rendered.

What retrieval sees is the alert's text: summary, description and labels. Two things are withheld,
because either would make the task a lookup rather than retrieval: the `runbook_url` annotation
(removed) and the `alertname` label (left out of the query; never used as a filter). The runbook
store is a fresh temporary milvus-lite file holding the prometheus-operator runbook corpus
(`--distractors` adds the 1,155 awesome-prometheus-alerts rules as competing documents).

Scores: top1, top3 and MRR@10 of the runbook whose alert name equals the case's alert name, overall
and per split: `dev` (the alert names whose SHA-1 is even, 65 cases; retrieval weights are chosen on
it) and `held-out` (the others, 47 cases; reported, not tuned on). All rules of one alert name are in
the same split.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.settings import SettingsError
from evals.datasets import data_dir
from evals.report import write_report
from memory.embeddings import LocalEmbedder
from memory.incidents import IncidentMemory
from memory.ingest import find_runbook_docs

SUITE = "runbooks"
MRR_DEPTH = 10

# Plausible label values for a small production cluster; monitoring components live in "monitoring".
_MONITORING_JOBS = {
    "alertmanager-main": "alertmanager-main-1",
    "prometheus-k8s": "prometheus-k8s-0",
    "prometheus-operator": "prometheus-operator-7c9f5d8b4-kq2xz",
    "node-exporter": "node-exporter-x7k2p",
    "grafana": "grafana-5b8f7d9c6-r2v4w",
}
_DEFAULT_LABELS = {
    "cluster": "prod-eu-1",
    "namespace": "shop",
    "pod": "checkout-7d9f8b6c5-x2kqp",
    "container": "checkout",
    "instance": "10.0.3.17:9100",
    "node": "worker-2",
    "job": "kubelet",
    "service": "checkout",
    "deployment": "checkout",
    "statefulset": "orders-db",
    "daemonset": "fluent-bit",
    "replicaset": "checkout-7d9f8b6c5",
    "job_name": "nightly-report-29384520",
    "horizontalpodautoscaler": "checkout",
    "persistentvolumeclaim": "data-orders-db-0",
    "persistentvolume": "pvc-3f6c1e2a-8b1d-4c1e-9a57-2b7d0c9e4f11",
    "poddisruptionbudget": "checkout-pdb",
    "resource": "cpu",
    "resourcequota": "shop-quota",
    "controller": "apiserver",
    "integration": "slack",
    "remote_name": "thanos-receive",
    "url": "http://thanos-receive.monitoring.svc:19291/api/v1/receive",
    "name": "v1beta1.metrics.k8s.io",
    "reason": "CrashLoopBackOff",
    "phase": "Pending",
    "condition": "MemoryPressure",
    "eviction_signal": "memory.available",
    "handler": "/api/v1/query",
    "mechanism": "static",
    "alertmanager": "http://10.0.3.21:9093/api/v2/alerts",
    "master": "md0",
    "owner_kind": "Deployment",
    "owner_name": "checkout",
    "workload": "checkout",
    "code": "500",
    "verb": "LIST",
    "scope": "cluster",
    "git_version": "v1.31.4",
    "type": "hard",
}
_SKIP_LABELS = {"le", "__name__", "metrics_path", "label_excluded_from_alerts"}


@dataclass
class AlertCase:
    alertname: str
    rule_file: str
    labels: dict[str, str]
    annotations: dict[str, str]  # rendered, without runbook_url
    runbook_url: str


# --- rendering -----------------------------------------------------------------------------------


def _humanize_percentage(v: float) -> str:
    return f"{v * 100:.4g}%"


def _humanize_duration(v: float) -> str:
    seconds = int(v)
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _humanize(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.4g}{unit}"
    return f"{v:.4g}"


def _value_for(rule: dict[str, Any]) -> float:
    """A value consistent with the rule firing: a ratio for percentages, a count otherwise."""
    text = json.dumps(rule.get("annotations", {}))
    if "humanizePercentage" in text:
        return 0.0734
    if "humanizeDuration" in text:
        return 15120.0
    return 3.0


def render_template(template: str, labels: dict[str, str], value: float) -> str:
    """Render the subset of Prometheus' Go templates that alert annotations use."""

    def with_block(m: re.Match[str]) -> str:
        label = labels.get(m.group(1), "")
        return (" " + m.group(2).replace("{{ . }}", label).strip() + " ") if label else " "

    text = re.sub(r"\{\{-?\s*with \$labels\.(\w+)\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}", with_block, template, flags=re.S)

    def action(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        label = re.fullmatch(r"\$labels\.(\w+)", expr)
        if label:
            return labels.get(label.group(1), "")
        literal = re.fullmatch(r'"([0-9.]+)"\s*\|\s*(\w+)', expr)
        val = float(literal.group(1)) if literal else value
        fn = literal.group(2) if literal else None
        printf = re.fullmatch(r'printf\s+"(%[0-9.]*[a-z])"\s+\$value', expr)
        if printf:
            return printf.group(1) % val
        pipe = re.fullmatch(r"\$value\s*\|\s*(\w+)", expr)
        fn = pipe.group(1) if pipe else fn
        if fn == "humanizePercentage":
            return _humanize_percentage(val)
        if fn == "humanizeDuration":
            return _humanize_duration(val)
        if fn in ("humanize", "humanize1024"):
            return _humanize(val)
        if expr == "$value":
            return f"{val:g}"
        if expr == "$labels":
            return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(labels.items())) + "]"
        return ""

    text = re.sub(r"\{\{-?(.*?)-?\}\}", action, text)
    return " ".join(text.split())


def _implied_labels(rule: dict[str, Any]) -> dict[str, str]:
    expr = str(rule.get("expr", ""))
    annotations = " ".join(str(v) for v in (rule.get("annotations") or {}).values())
    names: set[str] = set(re.findall(r"\$labels\.(\w+)", annotations))
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        names.update(n.strip() for n in group.split(",") if n.strip())
    matchers = dict(re.findall(r'\b(job|namespace|container|resource|type)="([^"]+)"', expr))
    labels: dict[str, str] = {}
    for name in sorted(names - _SKIP_LABELS):
        labels[name] = _DEFAULT_LABELS.get(name, f"{name}-1")
    for name, val in matchers.items():
        if name in labels or name in ("job", "namespace"):
            labels[name] = val
    job = labels.get("job")
    if job in _MONITORING_JOBS:
        labels.setdefault("namespace", "monitoring")
        if "pod" in labels:
            labels["pod"] = _MONITORING_JOBS[job]
        if "service" in labels:
            labels["service"] = job
    if "device" in labels:
        labels["device"] = "/dev/nvme0n1p1" if re.search(r"filesystem|disk|raid|md_", expr, re.I) else "eth0"
    if "mountpoint" in labels:
        labels["mountpoint"] = "/var/lib/kubelet"
    return labels


def build_alert(rule: dict[str, Any], rule_file: str) -> AlertCase:
    """The alert as Alertmanager would deliver it for `rule` (runbook_url kept aside)."""
    labels = {**_implied_labels(rule), **{k: str(v) for k, v in (rule.get("labels") or {}).items()}}
    labels["alertname"] = str(rule["alert"])
    value = _value_for(rule)
    raw = {k: str(v) for k, v in (rule.get("annotations") or {}).items()}
    runbook_url = raw.pop("runbook_url", "")
    annotations = {k: render_template(v, labels, value) for k, v in raw.items()}
    return AlertCase(labels["alertname"], rule_file, labels, annotations, runbook_url)


def query_text(case: AlertCase) -> str:
    """What retrieval sees: summary, description and labels, without alertname or runbook_url."""
    ann = case.annotations
    lines = [ann.get("summary", ""), ann.get("description", ""), ann.get("message", "")]
    lines.append(" ".join(f"{k}={v}" for k, v in sorted(case.labels.items()) if k != "alertname"))
    return "\n".join(line for line in lines if line)


# --- cases ---------------------------------------------------------------------------------------


def _find(data: Path, name: str) -> Path:
    for cand in (data / name, data):
        if cand.is_dir() and cand.name == name:
            return cand
    raise FileNotFoundError(f"{data}: no {name}/ folder (point --data at the datasets directory)")


def split_of(alertname: str) -> str:
    """`dev` or `held-out`, fixed by the alert name (never by the outcome)."""
    return "dev" if int(hashlib.sha1(alertname.encode()).hexdigest(), 16) % 2 == 0 else "held-out"


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks) or 1
    return {"cases": len(ranks), "top1": round(sum(1 for r in ranks if r == 1) / n, 4),
            "top3": round(sum(1 for r in ranks if r is not None and r <= 3) / n, 4),
            "mrr": round(sum(1 / r for r in ranks if r) / n, 4)}


def load_cases(data: Path) -> tuple[list[AlertCase], Path]:
    rules_dir = _find(data, "kube-prometheus-rules")
    runbooks_dir = _find(data, "prometheus-operator-runbooks")
    runbook_names = {p.stem for p in runbooks_dir.rglob("*.md") if not p.name.startswith("_")}
    cases = []
    for path in sorted(rules_dir.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for group in (doc.get("spec") or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                if "alert" in rule and rule["alert"] in runbook_names:
                    cases.append(build_alert(rule, path.name))
    return cases, runbooks_dir


# --- run -----------------------------------------------------------------------------------------


def run(data: Path, *, mode: str = "hybrid", distractors: bool = False, embedder: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    cases, runbooks_dir = load_cases(data)
    if not cases:
        raise FileNotFoundError(f"{data}: no alert rule has a same-name runbook")
    docs, _ = find_runbook_docs(runbooks_dir)
    if distractors:
        docs += find_runbook_docs(_find(data, "awesome-prometheus-alerts"))[0]
    per_case: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aiops-eval-runbooks-") as tmp:
        memory = IncidentMemory(str(Path(tmp) / "milvus.db"), embedder=embedder or LocalEmbedder())
        with memory:
            memory.add_runbooks(docs)
            ingested = time.perf_counter()
            for case in cases:
                matches = memory.search_runbooks(query_text(case), limit=MRR_DEPTH, mode=mode)
                names = [m.doc.alertname for m in matches]
                rank = names.index(case.alertname) + 1 if case.alertname in names else None
                per_case.append({
                    "alertname": case.alertname,
                    "rule_file": case.rule_file,
                    "split": split_of(case.alertname),
                    "severity": case.labels.get("severity", ""),
                    "rank": rank,
                    "top3": names[:3],
                    "top3_scores": [round(m.score, 4) for m in matches[:3]],
                    "query": query_text(case),
                })
    n = len(per_case)
    ranks: list[int | None] = [c["rank"] for c in per_case]
    result = {
        "suite": SUITE,
        "mode": mode,
        "distractors": distractors,
        "cases": n,
        "runbooks_in_store": len(docs),
        "top1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "top3": round(sum(1 for r in ranks if r is not None and r <= 3) / n, 4),
        "mrr": round(sum(1 / r for r in ranks if r) / n, 4),
        "by_split": {sp: _scores([c["rank"] for c in per_case if c["split"] == sp]) for sp in ("dev", "held-out")},
        "seconds": round(time.perf_counter() - started, 2),
        "ingest_seconds": round(ingested - started, 2),
        "per_case": per_case,
    }
    return result


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="aiops eval runbooks", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="datasets dir holding kube-prometheus-rules/ "
                   "and prometheus-operator-runbooks/ (default: $DATASETS_DIR or ../shared/datasets)")
    p.add_argument("--out", type=Path, help="write the JSON report here")
    p.add_argument("--mode", choices=("hybrid", "dense"), default="hybrid")
    p.add_argument("--distractors", action="store_true", help="also store awesome-prometheus-alerts rules")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2

    try:
        args.data = data_dir(args.data)
    except SettingsError as exc:
        print(f"aiops eval runbooks: {exc}", file=sys.stderr)
        return 2
    if not args.data.is_dir():
        print(f"aiops eval runbooks: {args.data}: not a directory", file=sys.stderr)
        return 2
    try:
        result = run(args.data, mode=args.mode, distractors=args.distractors)
    except FileNotFoundError as exc:
        print(f"aiops eval runbooks: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the operator
        print(f"aiops eval runbooks: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1

    if not write_report(args.out, result, "aiops eval runbooks"):
        return 2
    misses = [c for c in result["per_case"] if c["rank"] != 1]
    print(f"runbooks eval ({result['mode']}{', distractors' if result['distractors'] else ''}): "
          f"{result['cases']} cases, {result['runbooks_in_store']} runbooks in store: "
          f"top1={result['top1']:.3f} top3={result['top3']:.3f} mrr={result['mrr']:.3f} "
          f"in {result['seconds']:.1f}s")
    for sp, g in result["by_split"].items():
        print(f"  {sp:9} {g['cases']:>3} cases: top1={g['top1']:.3f} top3={g['top3']:.3f} mrr={g['mrr']:.3f}")
    for c in misses:
        print(f"  miss  {c['alertname']:<42} rank={c['rank']}  got {', '.join(c['top3'])}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli(sys.argv[1:]))
