"""Verification: re-run the evidence queries that showed the problem and judge recovery.

A metric has recovered when its recent value is back within half the distance between the anomalous
value and its baseline, or past the baseline in the good direction; a log template has recovered when its rate per minute is back near baseline.
Nothing is verified when nothing really executed (dry runs, skips): that is reported, not assumed.
A signal whose source cannot be read now (Prometheus down, its breaker open) is never taken as
recovered: the verification says "could not verify (prometheus down)" and `recovered` is None, or
False if a signal that could be read is still bad.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from datetime import datetime, timedelta

from agents.degraded import outage_note
from agents.diagnosis import BASELINE_WINDOW, DETECT_WINDOW
from agents.infrastructure import settle, toolset_checks
from agents.toolbox import Toolbox
from core.models import Evidence, ExecutionResult, MetricSeries, Verification, VerificationCheck
from tools.log_types import LogQuery, LogSourceError
from tools.metric_types import MetricsQueryError, back_to_baseline

VERIFY_WINDOW = timedelta(minutes=5)


def template_regex(template: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in re.split(r"<\*>", template)]
    return re.compile(".*?".join(parts))


async def _check_metric(ev: Evidence, toolbox: Toolbox, start: datetime, end: datetime) -> VerificationCheck:
    assert toolbox.metrics is not None
    series = await toolbox.metrics.query_range(ev.query, start, end)
    values = [v for s in series for v in s.values()[-5:]]
    if not values or ev.value is None or ev.baseline is None:
        return VerificationCheck(evidence_id=ev.id, query=ev.query, before=ev.value, recovered=False,
                                 note="no data after the change")
    after = statistics.median(values)
    recovered = back_to_baseline(ev.value, ev.baseline, after)
    return VerificationCheck(evidence_id=ev.id, query=ev.query, before=ev.value, after=round(after, 4),
                             recovered=recovered, series=MetricSeries.from_points(series[0].points),
                             checked_at=end,
                             note=f"baseline {ev.baseline:.4g}, during incident {ev.value:.4g}, now {after:.4g}")


async def _check_log(ev: Evidence, toolbox: Toolbox, start: datetime, end: datetime) -> VerificationCheck:
    assert toolbox.logs is not None
    q = json.loads(ev.query)
    pattern = template_regex(q["template"])
    records = await toolbox.logs.search(LogQuery(start=start, end=end, service=q.get("service"), limit=50_000))
    count = sum(1 for r in records if pattern.search(r.message))
    minutes = max((end - start).total_seconds() / 60, 1e-6)
    rate_after = count / minutes
    window = (ev.end - ev.start) if ev.start and ev.end else DETECT_WINDOW
    rate_during = (ev.value or 0) / max(window.total_seconds() / 60, 1e-6)
    rate_base = (ev.baseline or 0) / (BASELINE_WINDOW.total_seconds() / 60)
    recovered = rate_after <= max(1.5 * rate_base, 0.2 * rate_during)
    return VerificationCheck(evidence_id=ev.id, query=ev.query, before=round(rate_during, 3),
                             after=round(rate_after, 3), recovered=recovered,
                             note=f"{count} matching lines in the last {minutes:.0f} min "
                                  f"(per minute: baseline {rate_base:.2f}, incident {rate_during:.2f}, now {rate_after:.2f})")


async def verify(evidence: list[Evidence], component: str, executions: list[ExecutionResult],
                 toolbox: Toolbox) -> Verification:
    if not any(e.status == "ok" for e in executions):
        kinds = ", ".join(sorted({e.status for e in executions})) or "nothing"
        return Verification(recovered=None, note=f"not verified: no action actually executed ({kinds})")
    if toolbox.now is not None and toolbox.recovery_after is not None:
        toolbox.advance_to(toolbox.now + toolbox.recovery_after)  # replay: read the recorded aftermath
    elif toolbox.now is None and toolbox.settings.VERIFY_SETTLE_SECONDS:
        await asyncio.sleep(toolbox.settings.VERIFY_SETTLE_SECONDS)  # live: let the change take effect
    end = toolbox.current_time()
    start = end - VERIFY_WINDOW
    mine = [e for e in evidence if e.component == component and e.anomalous]
    # Re-check what showed the problem: the strong metric anomalies (at least half the top score) and
    # the notable log templates; a marginal side-effect is not a reason to call a fix a failure.
    top_score = max((e.score or 0.0 for e in mine if e.signal == "metric"), default=0.0)
    checks = []
    unread: dict[str, str] = {}  # dependency -> why it could not be read (once each)
    for ev in mine:
        if ev.signal == "metric" and (ev.score or 0.0) < 0.5 * top_score:
            continue
        if ev.signal == "metric" and toolbox.metrics is not None and ev.tool == "metrics":
            try:
                checks.append(await _check_metric(ev, toolbox, start, end))
            except MetricsQueryError as exc:
                dep = getattr(exc, "dependency", "") or toolbox.metrics.name
                unread.setdefault(dep, outage_note("metrics", exc, dep))
        elif ev.signal == "log" and toolbox.logs is not None and ev.tool == "logs":
            try:
                checks.append(await _check_log(ev, toolbox, start, end))
            except LogSourceError as exc:
                dep = getattr(exc, "dependency", "") or toolbox.logs.name
                unread.setdefault(dep, outage_note("logs", exc, dep))
    checks += await toolset_checks(evidence, component, executions, toolbox)  # each toolset reads its own again
    if unread:
        return _unverifiable(unread, checks, await settle(executions, False, toolbox))
    if not checks:
        return Verification(recovered=None, note=f"not verified: no re-runnable evidence for {component}")
    recovered = all(c.recovered for c in checks)
    confirmed = await settle(executions, recovered, toolbox)  # e.g. revert timers: removed only now
    return Verification(recovered=recovered, checks=checks,
                        note=f"{sum(c.recovered for c in checks)}/{len(checks)} signals back to baseline{confirmed}")


def _unverifiable(unread: dict[str, str], checks: list[VerificationCheck], confirmed: str) -> Verification:
    """Some signal could not be re-read: never a success. Still bad where one could be read: a failure."""
    head = f"could not verify ({', '.join(sorted(unread))} down): " + "; ".join(unread.values())
    read = f"; {sum(c.recovered for c in checks)}/{len(checks)} other signals back to baseline" if checks else ""
    recovered = False if any(not c.recovered for c in checks) else None
    return Verification(recovered=recovered, checks=checks, note=f"{head}{read}{confirmed}")
