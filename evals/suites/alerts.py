"""Real alert rules in rule mode: does the product understand them, and does it ever act where it must not?

Every rule of the awesome-prometheus-alerts catalogue (1,155, read at run time from `DATASETS_DIR`) is
rendered as Alertmanager would send it (`evals.alert_catalogue`) and run through the product's own
incident graph (`graphs.incident.investigate`: triage -> diagnosis -> planning) in rule mode with the
default settings and no telemetry behind it: exactly what a new user sees on day one. The approval
policy (`agents.approval.auto_approval`, the same function the gate calls) says whether the plan would
run without a human.

Two measurements:
- **labelled suite** (`evals/alert_labels.csv`, labelled by hand; rules in evals/ALERT_LABELS.md):
  category accuracy overall and per catalogue group, the share with a concrete action, wrong automatic
  actions (an auto-approved action outside the acceptable set; target 0) and wrong proposed actions,
  on the dev or held-out split (by a hash of the alert name; tune on dev only);
- **coverage** over all 1,155 rules: the share with a known category and with a concrete action, per group.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from agents.approval import auto_approval
from agents.understanding import understand
from core.settings import SettingsError, get_settings
from evals.alert_catalogue import CatalogueRule, load_catalogue, render
from evals.datasets import data_dir as resolve
from evals.report import write_report

SUITE = "alerts"
LABELS = Path(__file__).resolve().parent.parent / "alert_labels.csv"
ISSUE_12 = ("SmartCriticalWarning", "CephOsdNearFull", "MinioNodeDiskOffline")
# Chosen deliberately besides the hashed sample: the three alerts of issue 12, issue 9's example, and
# the alert of the bundled disk-full demo.
NAMED = (*ISSUE_12, "HostSystemdServiceCrashed", "HostOutOfDiskSpace")
SAMPLE_SIZE = 220
MIN_PER_GROUP = 8
Split = Literal["dev", "heldout", "all"]


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16)


def split_of(alertname: str) -> Literal["dev", "heldout"]:
    """Half of the rules for tuning, half held out, fixed by the name alone."""
    return "dev" if _h("split:" + alertname) % 2 == 0 else "heldout"


def select_rules(rules: list[CatalogueRule]) -> list[CatalogueRule]:
    """The labelled sample: per catalogue group its share of SAMPLE_SIZE (at least MIN_PER_GROUP),
    the first by sha256("select:" + alert name); then the NAMED rules."""
    groups: dict[str, list[CatalogueRule]] = defaultdict(list)
    for r in rules:
        groups[r.group].append(r)
    out: list[CatalogueRule] = []
    for members in groups.values():
        k = max(MIN_PER_GROUP, round(SAMPLE_SIZE * len(members) / len(rules)))
        out += sorted(members, key=lambda r: _h("select:" + r.alertname))[:k]
    chosen = {r.alertname for r in out}
    out += [r for r in rules if r.alertname in NAMED and r.alertname not in chosen]
    return out


class Label(BaseModel):
    group: str
    service: str
    alertname: str
    split: Literal["dev", "heldout"]
    category: str
    acceptable: list[str]  # outcomes a careful engineer would accept: escalate, noise, or catalog actions
    note: str = ""


def load_labels(path: Path = LABELS) -> list[Label]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [Label(group=r["group"], service=r["service"], alertname=r["alertname"], split=r["split"],  # type: ignore[arg-type]
                      category=r["category"], acceptable=r["acceptable_actions"].split(";"), note=r["note"])
                for r in csv.DictReader(fh)]


async def run_rule(rule: CatalogueRule, settings: Any) -> dict[str, Any]:
    """One rule through the real graph in rule mode; what it understood and what it would do."""
    from agents.toolbox import Toolbox
    from core.llm import LLMChain
    from graphs.incident import investigate

    webhook = render(rule)
    alert = webhook.alerts[0]
    reading = understand(alert)
    toolbox = Toolbox(llm=LLMChain([]), settings=settings, now=alert.starts_at, memory=None,
                      source_spec={"kind": "eval", "suite": SUITE, "case": rule.alertname})
    report = await investigate(webhook, toolbox)
    plan = report.plan
    actions: list[str]
    if report.triage.kind != "incident" or plan is None:
        outcome, actions, auto = "noise", [], False
    elif all(a.name == "escalate_to_oncall" for a in plan.actions):
        outcome, actions, auto = "escalate", [], False
    else:
        actions = [a.name for a in plan.actions]
        auto = auto_approval(plan, settings) is not None
        outcome = "+".join(actions)
    top = report.hypotheses[0] if report.hypotheses else None
    return {"group": rule.group, "service": rule.service, "alertname": rule.alertname,
            "category": reading.category, "domain": reading.domain, "host": reading.host,
            "affected_service": reading.service, "status": report.status.value, "outcome": outcome,
            "actions": [f"{a.name} {a.parameters.get('service', '')} on {a.target}".replace("  ", " ")
                        for a in (plan.actions if plan and actions else [])],
            "automatic": auto, "confidence": top.confidence if top else None,
            "fit": plan.fit if plan else []}


def _rate(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


def score_labelled(rows: dict[str, dict[str, Any]], labels: list[Label]) -> dict[str, Any]:
    per_group: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cases = []
    totals: dict[str, int] = defaultdict(int)
    for lab in labels:
        row = rows[lab.alertname]
        proposed = [a.split(" ", 1)[0] for a in row["actions"]]
        wrong_proposed = [a for a in proposed if a not in lab.acceptable]
        ok_category = row["category"] == lab.category
        ok_outcome = (row["outcome"] in lab.acceptable or (proposed and not wrong_proposed))
        wrong_auto = bool(row["automatic"] and wrong_proposed)
        g = per_group[lab.group]
        for key, value in (("rules", 1), ("category_ok", ok_category), ("concrete", bool(proposed)),
                           ("automatic", row["automatic"]), ("wrong_automatic", wrong_auto),
                           ("wrong_proposed", bool(wrong_proposed)), ("outcome_ok", bool(ok_outcome))):
            g[key] += int(value)
            totals[key] += int(value)
        cases.append({**row, "split": lab.split, "expected_category": lab.category,
                      "acceptable": lab.acceptable, "category_ok": ok_category, "outcome_ok": bool(ok_outcome),
                      "wrong_automatic": wrong_auto, "wrong_proposed": wrong_proposed, "note": lab.note})
    n = totals["rules"]

    def summary(t: dict[str, int]) -> dict[str, Any]:
        return {"rules": t["rules"], "category_accuracy": _rate(t["category_ok"], t["rules"]),
                "concrete_action_share": _rate(t["concrete"], t["rules"]),
                "outcome_accuracy": _rate(t["outcome_ok"], t["rules"]),
                "automatic_actions": t["automatic"], "wrong_automatic_actions": t["wrong_automatic"],
                "wrong_proposed_actions": t["wrong_proposed"]}

    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in cases:
        if not c["category_ok"]:
            confusion[c["expected_category"]][c["category"]] += 1
    return {**summary(totals), "rules": n,
            "by_group": {k: summary(v) for k, v in sorted(per_group.items())},
            "category_errors": {k: dict(v) for k, v in sorted(confusion.items())}, "cases": cases}


def coverage(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r)

    def cov(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"rules": len(rs),
                "known_category_share": _rate(sum(r["category"] != "unknown" for r in rs), len(rs)),
                "concrete_action_share": _rate(sum(bool(r["actions"]) for r in rs), len(rs)),
                "host_share": _rate(sum(bool(r["host"]) for r in rs), len(rs)),
                "service_share": _rate(sum(bool(r["affected_service"]) for r in rs), len(rs)),
                "escalated_share": _rate(sum(r["outcome"] == "escalate" for r in rs), len(rs)),
                "automatic_actions": sum(bool(r["automatic"]) for r in rs)}

    categories: dict[str, int] = defaultdict(int)
    for r in rows:
        categories[r["category"]] += 1
    return {**cov(rows), "by_group": {k: cov(v) for k, v in sorted(by_group.items())},
            "categories": dict(sorted(categories.items(), key=lambda kv: -kv[1]))}


async def run_async(data_dir: Path, split: Split = "all", *, settings: Any = None, labels_path: Path = LABELS,
                    only: list[str] | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    rules = load_catalogue(data_dir)
    if only:
        rules = [r for r in rules if r.alertname in set(only)]
    started = time.perf_counter()
    rows = [await run_rule(r, settings) for r in rules]
    seconds = round(time.perf_counter() - started, 2)
    by_name = {r["alertname"]: r for r in rows}
    labels = [lab for lab in load_labels(labels_path) if lab.alertname in by_name]
    chosen = [lab for lab in labels if split == "all" or lab.split == split]
    labelled = score_labelled(by_name, chosen)
    return {
        "suite": SUITE, "mode": "rules", "split": split, "catalogue_rules": len(rows),
        "labelled": labelled,
        "coverage": coverage(rows),
        "issue_12": {n: {k: by_name[n][k] for k in ("category", "domain", "outcome", "automatic", "fit")}
                     for n in ISSUE_12 if n in by_name},
        "seconds": seconds,
    }


def run(data_dir: Path, split: Split = "all", **kw: Any) -> dict[str, Any]:
    return asyncio.run(run_async(data_dir, split, **kw))


def summary_table(report: dict[str, Any]) -> str:
    lab = report["labelled"]
    lines = [f"alerts ({report['split']} split): {lab['rules']} labelled rules, "
             f"{report['catalogue_rules']} catalogue rules, rule mode, {report['seconds']} s", "",
             f"{'group':44} {'rules':>5} {'cat.acc':>7} {'concrete':>8} {'auto':>4} {'wrong auto':>10} "
             f"{'wrong prop.':>11}"]
    for name, g in [("all", lab), *lab["by_group"].items()]:
        lines.append(f"{name[:44]:44} {g['rules']:>5} {g['category_accuracy']:>7.3f} "
                     f"{g['concrete_action_share']:>8.3f} {g['automatic_actions']:>4} "
                     f"{g['wrong_automatic_actions']:>10} {g['wrong_proposed_actions']:>11}")
    cov = report["coverage"]
    lines += ["", f"coverage of all {cov['rules']} rules: known category {cov['known_category_share']:.3f}, "
              f"concrete action {cov['concrete_action_share']:.3f}, escalated {cov['escalated_share']:.3f}, "
              f"automatic {cov['automatic_actions']}; host named {cov['host_share']:.3f}, "
              f"service named {cov['service_share']:.3f}", "",
              f"{'group':44} {'rules':>5} {'known cat.':>10} {'concrete':>8} {'auto':>4}"]
    for name, g in cov["by_group"].items():
        lines.append(f"{name[:44]:44} {g['rules']:>5} {g['known_category_share']:>10.3f} "
                     f"{g['concrete_action_share']:>8.3f} {g['automatic_actions']:>4}")
    lines += ["", "issue 12: " + ", ".join(f"{n} -> {v['outcome']}{' (AUTOMATIC)' if v['automatic'] else ''}"
                                           for n, v in report["issue_12"].items())]
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aiops eval alerts", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="datasets folder (default: $DATASETS_DIR or ../shared/datasets)")
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="all",
                        help="which labelled rules to score (coverage always covers the whole catalogue)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data_dir = resolve(args.data)
    try:
        report = run(data_dir, args.split, settings=settings)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(report))

    return 0 if write_report(args.out, report) else 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli(sys.argv[1:]))
