"""Diagnosis: gather evidence with the typed tools, then rank root-cause hypotheses.

Both modes start from the same evidence: the metric anomaly ranking (every component scored against
its own baseline, call graph applied) and the log templates that are new or spiking, redacted. In
rule mode the ranking is turned into hypotheses deterministically. In LLM mode the model sees that
evidence, may call the metric/log tools for more (each result becomes cited evidence), and returns a
structured `Diagnosis`; invalid citations are dropped and an unusable answer falls back to the rules.
The model explains the rules' ranking rather than replacing it (`explained`: measured worse).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field

from agents.degraded import UNAVAILABLE_QUERY, outage_note
from agents.infrastructure import add_infrastructure_evidence, infrastructure_tools
from agents.prompts import DIAGNOSIS_SYSTEM, fence
from agents.recall import known_fix, recall
from agents.subject import alert_subject, subject_first
from agents.toolbox import Toolbox
from agents.understanding import expression
from core.llm import parse_tool_call
from core.models import Diagnosis, Evidence, Hypothesis, Incident, LLMCall, TriageVerdict
from core.subject import host_of
from tools.analysis.alert_query import read_target_series, run_alert_query, target_selector
from tools.analysis.log_templates import summarize_logs
from tools.analysis.metric_anomaly import STOPPED_NOTE, rank_components
from tools.log_types import LogQuery, LogRecord, LogSourceError
from tools.logs.tools import make_log_tools
from tools.metric_types import MetricsQueryError, MetricsUnavailable
from tools.metrics.tools import make_metric_tools
from tools.result import invoke_tool

log = logging.getLogger(__name__)

# The window in which symptoms are looked for, and the baseline before it that defines "normal".
# Symptoms start before an alert fires (its `for:` clause), so the window reaches DETECT_WINDOW back
# from the alert's start (at most MAX_DETECT_WINDOW back from now).
DETECT_WINDOW = timedelta(minutes=10)
MAX_DETECT_WINDOW = timedelta(minutes=60)
BASELINE_WINDOW = timedelta(minutes=60)
MAX_SUSPECTS = 5
MAX_LLM_STEPS = 4

# What a metric's move most likely means: (substring, the direction that is bad, cause).
_CAUSE_BY_METRIC = [
    ("restart", "up", "crash loop: the process keeps restarting"),
    ("filesystem", "up", "filesystem filling up"), ("disk", "up", "disk filling up"),
    ("cpu", "up", "CPU saturation"), ("mem", "up", "memory pressure"),
    ("latency", "up", "elevated latency"), ("success", "down", "requests failing"),
    ("error", "up", "error rate up"), ("carrier", "up", "link flapping"), ("link", "up", "link flapping"),
    ("workload", "any", "load change"), ("network", "any", "network traffic shift"),
]


STOPPED_CAUSE = "stopped calling a healthy callee: failing before the call (errors, exceptions)"


def cause_for(metric: str, direction: str) -> str:
    low = metric.lower()
    for key, bad, cause in _CAUSE_BY_METRIC:
        if key in low and bad in ("any", direction):
            return cause
    return f"{metric} {'rose' if direction == 'up' else 'dropped'} far from its baseline"


@dataclass
class EvidenceBook:
    """Allocates evidence ids and keeps every item the diagnosis saw."""

    items: list[Evidence] = field(default_factory=list)

    def add(self, **kw: Any) -> Evidence:
        ev = Evidence(id=f"ev-{len(self.items) + 1}", **kw)
        self.items.append(ev)
        return ev

    def by_component(self) -> dict[str, list[Evidence]]:
        out: dict[str, list[Evidence]] = defaultdict(list)
        for ev in self.items:
            out[ev.component].append(ev)
        return out

    def ids(self) -> set[str]:
        return {e.id for e in self.items}


@dataclass
class Findings:
    suspects: list[Any] = field(default_factory=list)  # tools.analysis.metric_anomaly.Suspect
    book: EvidenceBook = field(default_factory=EvidenceBook)
    start: datetime | None = None
    end: datetime | None = None
    past: list[Any] = field(default_factory=list)  # memory.incidents.IncidentMatch, similar enough to cite
    unavailable: list[str] = field(default_factory=list)  # "metrics unavailable: prometheus breaker open ..."
    subject_score: float = 0.0  # the strongest anomaly of the subject's own series (alert query, target)

    def source_unavailable(self, kind: str, exc: BaseException, dependency: str, end: datetime) -> None:
        """A source could not be read: the diagnosis goes on without it and says so (one evidence item)."""
        note = outage_note(kind, exc, dependency)
        log.warning("diagnosis without %s: %s", kind, note)
        self.unavailable.append(note)
        self.book.add(tool=getattr(exc, "dependency", "") or dependency, query=UNAVAILABLE_QUERY,
                      component=getattr(exc, "dependency", "") or dependency, signal="state",
                      anomalous=False, start=self.start, end=end, excerpt=note)


def _log_service(r: LogRecord) -> str:
    return r.service or r.host or "unknown"


def detection_window(incident: Incident, now: datetime) -> tuple[datetime, datetime, datetime]:
    """(baseline start, window start, end) for an incident analysed at `now`."""
    start = min(now - DETECT_WINDOW, incident.alert.starts_at - DETECT_WINDOW)
    start = max(start, now - MAX_DETECT_WINDOW)
    return start - BASELINE_WINDOW, start, now


def subject(incident: Incident, verdict: TriageVerdict | None) -> str:
    """What the alert is about (`agents.subject.alert_subject`)."""
    return alert_subject(incident, verdict)


async def gather_evidence(incident: Incident, toolbox: Toolbox, verdict: TriageVerdict | None = None) -> Findings:
    baseline_start, start, end = detection_window(incident, toolbox.current_time())
    f = Findings(start=start, end=end)
    alert = incident.alert
    f.book.add(tool="alertmanager", signal="state", component=subject(incident, verdict), anomalous=False,
               query=f'ALERTS{{alertname="{alert.name}"}}', start=alert.starts_at, end=end,
               excerpt=f"{alert.name} firing since {alert.starts_at:%H:%M}Z: "
                       f"{alert.annotations.get('summary') or alert.annotations.get('description') or alert.labels}")
    if toolbox.metrics is not None and await _read_subject(incident, toolbox, f, subject(incident, verdict),
                                                           baseline_start):
        try:
            f.suspects = (await rank_components(toolbox.metrics, start, end, baseline_start=baseline_start,
                                                call_graph=toolbox.call_graph))[:MAX_SUSPECTS]
        except MetricsQueryError as exc:  # Prometheus down / breaker open: diagnose on what else there is
            f.source_unavailable("metrics", exc, toolbox.metrics.name, end)
        for s in f.suspects:
            if not s.anomalies:  # ranked on aggregate/propagated score only: say so, as weak evidence
                f.book.add(tool="metrics", query="rank_components", component=s.component, signal="metric",
                           start=start, end=end, score=s.score, anomalous=False,
                           excerpt=f"aggregate anomaly score {s.score:.2f}; no single metric stands out")
            for a in s.anomalies[:3]:
                f.book.add(tool="metrics", query=a.query, component=s.component, signal="metric",
                           start=a.start, end=a.end, value=a.value, baseline=a.baseline, score=a.score, series=a.series,
                           excerpt=(f"{a.note} (anomaly score {a.score:.1f})" if a.note else
                                    f"{a.metric} {a.direction} to {a.value:.4g} (baseline {a.baseline:.4g}, "
                                    f"anomaly score {a.score:.1f})"))
    if toolbox.logs is not None:
        try:
            recent = await toolbox.logs.search(LogQuery(start=start, end=end, limit=20_000))
            before = await toolbox.logs.search(LogQuery(start=baseline_start, end=start, limit=20_000))
        except LogSourceError as exc:  # Elasticsearch down / files unreadable: diagnose without logs
            f.source_unavailable("logs", exc, toolbox.logs.name, end)
            recent, before = [], []
        by_svc: dict[str, list[LogRecord]] = defaultdict(list)
        base_by_svc: dict[str, list[LogRecord]] = defaultdict(list)
        for r in recent:
            by_svc[_log_service(r)].append(r)
        for r in before:
            base_by_svc[_log_service(r)].append(r)
        for svc, records in by_svc.items():
            # No baseline data at all (a source that starts now) is not "everything is new".
            stats = summarize_logs(records, base_by_svc.get(svc, []) if before else None, top=10,
                                   window_seconds=(end - start).total_seconds(),
                                   baseline_seconds=(start - baseline_start).total_seconds())
            notable = [t for t in stats if t.is_new or (t.spike_ratio or 0) >= 3.0
                       or any(lv.lower() in ("error", "err", "crit", "critical", "fatal", "emerg", "alert")
                              for lv in t.levels)]
            hosts = {r.host for r in records if r.host}
            about = {"service": svc, **({"host": next(iter(hosts))} if len(hosts) == 1 else {})}
            for t in notable[:3]:
                f.book.add(tool="logs", signal="log", component=svc, start=start, end=end, about=about,
                           query=json.dumps({"service": svc, "template": t.template}),
                           value=float(t.count), baseline=float(t.baseline_count),
                           excerpt=(f"{t.count}x in {int((end - start).total_seconds() // 60)} min "
                                    f"(baseline {t.baseline_count}{', new' if t.is_new else ''}): {t.example}"))

    await add_infrastructure_evidence(incident, toolbox, f, start, end, baseline_start, verdict)
    return f


async def _read_subject(incident: Incident, toolbox: Toolbox, f: Findings, target: str,
                        baseline_start: datetime) -> bool:
    """The alert's own query first, then the target's other series: evidence about the subject.

    The rule's expression (`g0.expr` of `generatorURL`) runs over the baseline and the window; each
    series it returns is compared with the baseline (before the window, which starts DETECT_WINDOW
    before `startsAt`: the rule's `for:` means it moved before the alert fired). Then every series of
    the target (`{instance="..."}` or the like, for a rule with no `service` label) is scored the same
    way. Returns False when the metrics source is down (noted once; nothing more to ask it).
    """

    assert toolbox.metrics is not None and f.start is not None and f.end is not None
    alert = incident.alert
    expr = expression(alert)
    try:
        if expr:
            try:
                readings = await run_alert_query(toolbox.metrics, expr, baseline_start, f.start, f.end)
            except MetricsUnavailable:
                raise
            except (MetricsQueryError, ValueError) as exc:  # a backend that cannot run this expression
                f.book.add(tool="metrics", query=expr, component=target, signal="metric", anomalous=False,
                           start=f.start, end=f.end, excerpt=f"the alert query could not be run here: {exc}"[:300])
                readings = None
            if readings == []:
                f.book.add(tool="metrics", query=expr, component=target, signal="metric", anomalous=False,
                           start=f.start, end=f.end, excerpt="the alert query returned no series in the window")
            for r in (readings or [])[:3]:
                comp = r.labels.get("service") or target
                host = host_of(r.labels)
                f.book.add(tool="metrics", query=expr, component=comp, signal="metric", anomalous=r.anomalous,
                           start=f.start, end=f.end, value=r.value, baseline=r.baseline, score=r.score,
                           series=r.series, excerpt=r.describe(expr),
                           about={**({"host": host} if host else {}), **({"service": comp} if comp else {})})
                if comp == target and r.anomalous:
                    f.subject_score = max(f.subject_score, r.score)
        selector = "" if alert.labels.get("service") else target_selector(alert.labels)
        if selector:
            for a in (await read_target_series(toolbox.metrics, selector, baseline_start, f.start, f.end))[:3]:
                r = a.reading
                f.book.add(tool="metrics", query=a.query, component=target, signal="metric", anomalous=True,
                           start=f.start, end=f.end, value=r.value, baseline=r.baseline, score=r.score,
                           series=r.series, excerpt=f"{a.metric} " + r.describe(a.query).split(" ", 3)[-1])
                f.subject_score = max(f.subject_score, r.score)
    except MetricsUnavailable as exc:
        f.source_unavailable("metrics", exc, toolbox.metrics.name, f.end)
        return False
    except (MetricsQueryError, ValueError) as exc:  # the target's series: a backend that cannot select them
        log.info("target series not read: %s", exc)
    return True


# How sure a hypothesis may claim to be, by the number of independent kinds of evidence behind it.
# The alert alone is a claim, not a corroboration: it is what we are trying to explain.
ALERT_ONLY_CONFIDENCE = 0.25
_CONFIDENCE_CAP = {0: ALERT_ONLY_CONFIDENCE, 1: 0.6, 2: 0.8}
MAX_CONFIDENCE = 0.95


def corroboration(items: list[Evidence], remembered: bool = False) -> list[str]:
    """The independent kinds of evidence behind a hypothesis: metrics, logs, infrastructure state read
    from a tool (not the alert), memory of a verified fix. Non-anomalous items do not count."""
    kinds = {e.signal for e in items if e.anomalous and e.tool != "alertmanager"
             and e.signal in ("metric", "log", "state", "memory")}
    if remembered:
        kinds.add("memory")
    return sorted(kinds)


def honest_confidence(share: float, kinds: list[str]) -> float:
    """The hypothesis' share of the ranking, capped by how much independent evidence backs it."""
    cap = _CONFIDENCE_CAP.get(len(kinds), MAX_CONFIDENCE)
    return round(min(cap, max(0.01, share)), 3)


def rank_rules(incident: Incident, verdict: TriageVerdict, f: Findings) -> Diagnosis:
    """Deterministic ranking: metric anomaly score, log evidence, and the component the alert names."""
    evidence = f.book.by_component()
    metric_max = max([s.score for s in f.suspects] + [f.subject_score]) or 1.0
    scores: dict[str, float] = defaultdict(float)
    for rank, s in enumerate(f.suspects):
        if s.anomalies:  # an aggregate score with no single metric standing out is not evidence
            scores[s.component] += 0.6 * (s.score / metric_max) + 0.01 * (len(f.suspects) - rank)
    for comp, items in evidence.items():
        logs = [e for e in items if e.signal == "log"]
        if logs:
            scores[comp] += 0.3 * min(1.0, len(logs) / 2)
    for m in f.past:  # a cause that was confirmed (fix verified) on a similar incident before
        if m.record.recovered is True and m.record.root_cause_component:
            scores[m.record.root_cause_component] += 0.8 * m.score
    target = subject(incident, verdict)
    if f.subject_score and target not in {s.component for s in f.suspects if s.anomalies}:
        scores[target] += 0.6 * min(1.0, f.subject_score / metric_max)  # its own query / series (not a suspect)
    remembered = {m.record.root_cause_component for m in f.past if m.record.recovered is True}
    ranking = subject_first(scores, evidence, target, remembered)
    total = sum(score for _, score in ranking) or 1.0
    hyps = []
    for comp, score in ranking:  # ranking by score; confidence apart
        items = evidence.get(comp, [])
        cause = _cause_from(items, verdict)
        kinds = corroboration(items, comp in remembered)
        hyps.append(Hypothesis(component=comp, cause=cause, confidence=honest_confidence(score / total, kinds),
                               evidence_ids=[e.id for e in items],
                               rationale=_rationale(comp, items, target, kinds)))
    summary = (f"{hyps[0].component}: {hyps[0].cause}" if hyps else "no evidence")
    return Diagnosis(hypotheses=hyps, summary=summary)


def _cause_from(items: list[Evidence], verdict: TriageVerdict) -> str:
    logs = [e for e in items if e.signal == "log"]
    metrics = [e for e in items if e.signal == "metric" and e.anomalous]
    parts = []
    if metrics:
        top = metrics[0]
        metric = top.query.split("{")[0]
        direction = "up" if (top.value or 0) >= (top.baseline or 0) else "down"
        parts.append(STOPPED_CAUSE if top.excerpt.startswith(STOPPED_NOTE) else cause_for(metric, direction))
    if logs:
        parts.append("logs: " + logs[0].excerpt.split(": ", 1)[-1][:140])
    if not parts:
        return f"{verdict.category} alert with no corroborating telemetry"
    return "; ".join(parts)


def _rationale(comp: str, items: list[Evidence], target: str, kinds: list[str]) -> str:
    if not kinds:
        return ("backed only by the alert itself: no corroborating metrics, logs or memory"
                if comp == target else "no corroborating evidence")
    bits = [f"{len([e for e in items if e.signal == 'metric' and e.anomalous])} anomalous metrics",
            f"{len([e for e in items if e.signal == 'log'])} notable log templates",
            f"corroborated by {', '.join(kinds)}"]
    if comp == target:
        bits.append("named by the alert")
    return ", ".join(bits)


# ------------------------------------------------------------------------------------ LLM mode --
class HypothesisOut(BaseModel):
    component: str
    cause: str
    confidence: float = Field(ge=0, le=1)
    evidence_ids: list[str]


class DiagnosisOutput(BaseModel):
    """Final answer: ranked root-cause hypotheses, most likely first."""

    hypotheses: list[HypothesisOut] = Field(min_length=1)
    summary: str = ""


DiagnosisOutput.__name__ = "Diagnosis"  # the tool name the model calls


def _evidence_brief(f: Findings) -> str:
    lines = [f"window {f.start:%H:%M}-{f.end:%H:%M} UTC" if f.start and f.end else ""]
    for ev in f.book.items:
        lines.append(f"{ev.id} [{ev.tool}] {ev.component}: {ev.excerpt}")
    return "\n".join(lines)


def _tools_for(toolbox: Toolbox) -> list[Any]:
    tools: list[Any] = []
    if toolbox.metrics is not None:
        tools += make_metric_tools(toolbox.metrics, call_graph=toolbox.call_graph)
    if toolbox.logs is not None:
        tools += make_log_tools(toolbox.logs, now=toolbox.current_time)

    return tools + infrastructure_tools(toolbox)


async def diagnose_llm(incident: Incident, verdict: TriageVerdict, f: Findings, toolbox: Toolbox,
                       calls: list[LLMCall]) -> Diagnosis | None:
    alert = incident.alert
    tools = _tools_for(toolbox)
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [
        SystemMessage(DIAGNOSIS_SYSTEM + toolbox.notes()),
        HumanMessage(f"Diagnose this {verdict.category} alert.\n"
                     + fence("alert labels", alert.labels) + "\n" + fence("alert annotations", alert.annotations)
                     + "\n\nEVIDENCE (ids ev-N are what you cite)\n"
                     + fence("evidence: metrics, log lines, tool output, memory", _evidence_brief(f), limit=20_000)),
    ]
    out: DiagnosisOutput | None = None
    for _ in range(MAX_LLM_STEPS):
        msg = await toolbox.llm.step("diagnosis", messages, [*tools, DiagnosisOutput], calls)
        if msg is None:
            return None
        out = parse_tool_call(msg, DiagnosisOutput)
        if out is not None:
            break
        tool_calls = [c for c in msg.tool_calls if c["name"] in by_name]
        if not tool_calls:
            break
        messages.append(msg)
        for call in tool_calls:
            result = await invoke_tool(by_name[call["name"]], call)  # a ToolResult, whatever went wrong
            ids = [f.book.add(**obs.evidence_kwargs(), start=f.start, end=f.end).id for obs in result.evidence]
            head = ", ".join(ids) or "no evidence"  # an error is not evidence: nothing to cite
            messages.append(ToolMessage(f"{head}: " + fence(f"output of {call['name']}", result.text(2000), limit=2000),
                                        tool_call_id=call["id"]))
    if out is None:
        out = await toolbox.llm.structured("diagnosis", messages, DiagnosisOutput, calls)
    if out is None:
        return None
    known = f.book.ids()
    hyps = []
    for h in out.hypotheses:
        cited = [e for e in h.evidence_ids if e in known]
        if not cited:
            log.warning("dropping hypothesis %s: cites no known evidence (%s)", h.component, h.evidence_ids)
            continue
        kinds = corroboration([e for e in f.book.items if e.id in cited])
        # The model's own confidence, capped by what its citations corroborate.
        hyps.append(Hypothesis(component=h.component, cause=h.cause,
                               confidence=honest_confidence(h.confidence, kinds), evidence_ids=cited,
                               rationale="LLM, from cited evidence" + ("" if kinds else
                                                                       " (only the alert itself: uncorroborated)")))
    if not hyps:
        return None
    hyps.sort(key=lambda h: -h.confidence)
    return Diagnosis(hypotheses=hyps, summary=out.summary or f"{hyps[0].component}: {hyps[0].cause}")


@dataclass
class DiagnosisResult:
    diagnosis: Diagnosis
    evidence: list[Evidence]
    used_llm: bool
    known_fix: dict[str, Any] | None = None  # the past incident whose verified fix applies again


def _from_memory(match: Any, f: Findings) -> Diagnosis:
    r = match.record
    cited = [e.id for e in f.book.items if e.component == r.root_cause_component or e.tool == "memory"]
    kinds = corroboration([e for e in f.book.items if e.id in cited], remembered=True)
    hyp = Hypothesis(component=r.root_cause_component, cause=r.root_cause,
                     confidence=honest_confidence(match.score, kinds),
                     evidence_ids=cited, rationale=f"same signature as {r.id}, whose fix was verified")
    return Diagnosis(hypotheses=[hyp], summary=f"{r.root_cause_component}: {r.root_cause} (seen before: {r.id})")


async def diagnose(incident: Incident, verdict: TriageVerdict, toolbox: Toolbox,
                   calls: list[LLMCall]) -> DiagnosisResult:
    f = await gather_evidence(incident, toolbox, verdict)
    f.past = await recall(incident, verdict, f.book.items, toolbox, f.book.add)
    known = known_fix(incident, verdict, f.past)
    fix = ({"incident_id": known.record.id, "occurred_at": known.record.occurred_at.isoformat(),
            "actions": known.record.actions} if known else None)
    if known is not None and toolbox.llm.providers:
        # The same incident again, and we know what fixed it: no need to ask a model.
        return DiagnosisResult(degraded(_from_memory(known, f), f), f.book.items, False, fix)
    rules = rank_rules(incident, verdict, f)  # before the model's tool calls add evidence: rule mode's ranking
    if toolbox.llm.providers:
        alert = incident.alert
        key = {"node": "diagnosis", "alert": alert.name, "labels": alert.labels, "category": verdict.category,
               "evidence": [[e.id, e.tool, e.component, e.query] for e in f.book.items]}
        result = await toolbox.cached("analysis", key, lambda: diagnose_llm(incident, verdict, f, toolbox, calls),
                                      Diagnosis)
        if result is not None:
            return DiagnosisResult(degraded(explained(rules, result), f), f.book.items, True, fix)
    return DiagnosisResult(degraded(rules, f), f.book.items, False, fix)


def explained(rules: Diagnosis, model: Diagnosis) -> Diagnosis:
    """The rules' ranking, explained by the model.

    Measured on the Nezha days (docs/evals.md, "LLM mode"), a small local model ranked worse than
    the rules, so the model does not reorder: each component keeps its rule rank and confidence, and
    takes the model's cause (with the evidence the model cited added to its own) when the model
    named it. A component only the model named, with cited evidence, comes after the ranked ones.
    The summary is the first hypothesis; where the model would have put another component first,
    it says so.
    """
    said: dict[str, Hypothesis] = {}
    for h in model.hypotheses:  # the model's order: its confidence
        said.setdefault(h.component, h)
    hyps = []
    for h in rules.hypotheses:
        m = said.pop(h.component, None)
        if m is None:
            hyps.append(h)
            continue
        cited = h.evidence_ids + [e for e in m.evidence_ids if e not in h.evidence_ids]
        hyps.append(h.model_copy(update={"cause": m.cause, "evidence_ids": cited,
                                         "rationale": f"{h.rationale}; cause explained by the model"}))
    hyps += [m.model_copy(update={"rationale": "; ".join(filter(None, (m.rationale, "not ranked by the rules")))})
             for m in said.values()]
    if not hyps:
        return model
    summary = f"{hyps[0].component}: {hyps[0].cause}"
    first = model.hypotheses[0] if model.hypotheses else None
    if first is not None and first.component != hyps[0].component:
        summary += f" (the model would put {first.component} first: {first.cause})"
    return Diagnosis(hypotheses=hyps, summary=summary)


def degraded(d: Diagnosis, f: Findings) -> Diagnosis:
    """Say in the summary and in every hypothesis' rationale which source could not be read. The
    confidences need no extra cut: they are capped by the kinds of evidence actually seen, and an
    unread source contributes none."""
    if not f.unavailable:
        return d
    notes = "; ".join(f.unavailable)
    hyps = [h.model_copy(update={"rationale": f"{h.rationale}; {notes}" if h.rationale else notes})
            for h in d.hypotheses]
    return Diagnosis(hypotheses=hyps, summary=f"{d.summary} ({notes})")

