"""Charts of metric evidence, drawn on the server (matplotlib, Agg: no display, no browser).

One picture per metric evidence item that kept its series (`Evidence.series`): the series over the
baseline and the window, the band the detector compared it with, where the window began, when the
alert started, the anomaly's peak, and, where the fix was verified on that metric, what it read
afterwards (`VerificationCheck.series`). PNG for chats, SVG for the web console.

Everything drawn as text (metric selectors, label values) came from a scrape or an alert: it is
drawn with math parsing off, so a `$` in a label is a dollar sign and never a TeX error.
Figures are built with the object API (no pyplot state) under one lock: matplotlib's font and text
caches are shared by the process, and a chart takes tens of milliseconds.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Literal

from core.models import Evidence, IncidentReport, VerificationCheck

Format = Literal["png", "svg"]
WIDTH_IN, HEIGHT_IN, DPI = 8.0, 3.4, 110  # 880 x 374 px: readable in a chat, well inside photo limits
_lock = threading.Lock()
_cache: OrderedDict[str, bytes] = OrderedDict()
_CACHE_SIZE = 64


_warming: list[threading.Thread] = []


def warm() -> None:
    """Import matplotlib and build its font cache in a background thread, once per process: the first
    chart otherwise costs seconds, inside a notification's delivery timeout."""
    with _lock:
        if _warming:
            return

        def run() -> None:
            import matplotlib.figure  # noqa: F401  (the import and font cache are the slow part)
            from matplotlib import font_manager

            font_manager.findfont("DejaVu Sans")

        thread = threading.Thread(target=run, name="charts-warm", daemon=True)
        _warming.append(thread)
        thread.start()


def chartable(report: IncidentReport) -> list[Evidence]:
    """Metric evidence that can be drawn, the top hypothesis' citations first, then by anomaly score."""
    cited = report.hypotheses[0].evidence_ids if report.hypotheses else []
    items = [e for e in report.evidence if e.signal == "metric" and e.series is not None and e.series.values]
    return sorted(items, key=lambda e: (e.id not in cited, not e.anomalous, -(e.score or 0.0)))


def top_evidence(report: IncidentReport) -> Evidence | None:
    """The evidence the incident card shows: the strongest metric the most likely cause rests on."""
    items = chartable(report)
    return items[0] if items else None


def check_for(report: IncidentReport, evidence_id: str) -> VerificationCheck | None:
    v = report.verification
    return next((c for c in v.checks if c.evidence_id == evidence_id), None) if v else None


def verified_evidence(report: IncidentReport) -> Evidence | None:
    """The evidence whose re-read after the fix is drawn (the first metric check that has a series)."""
    if report.verification is None or not report.executions:
        return None
    drawable = {e.id: e for e in chartable(report)}
    for c in report.verification.checks:
        if c.series is not None and c.evidence_id in drawable:
            return drawable[c.evidence_id]
    return None


def alert_start(report: IncidentReport) -> datetime | None:
    """When the alert began firing: the alert's own evidence item (diagnosis records it first)."""
    return next((e.start for e in report.evidence if e.tool == "alertmanager" and e.start), None)


def render(report: IncidentReport, evidence_id: str, fmt: Format = "png") -> bytes | None:
    """The chart of one evidence item (with its verification, if any); None when it has no series."""
    ev = next((e for e in report.evidence if e.id == evidence_id), None)
    if ev is None or ev.series is None or not ev.series.values:
        return None
    check = check_for(report, evidence_id)
    start = alert_start(report)
    key = "|".join([report.incident_id, fmt, ev.model_dump_json(),
                    check.model_dump_json() if check else "", start.isoformat() if start else ""])
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        data = _draw(ev, check, start, fmt)
        _cache[key] = data
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return data


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _draw(ev: Evidence, check: VerificationCheck | None, alert_at: datetime | None, fmt: Format) -> bytes:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    assert ev.series is not None
    s = ev.series
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pts = s.points()
    xs, ys = [float(date2num(t)) for t, _ in pts], [v for _, v in pts]
    ax.plot(xs, ys, color="#1f5fa8", linewidth=1.6, label="series", zorder=3)
    if s.band is not None:
        ax.axhspan(s.band[0], s.band[1], color="#9cc3e6", alpha=0.35, linewidth=0, zorder=1,
                   label="baseline band (|z| < 3)")
    if s.window_start is not None:
        ax.axvspan(float(date2num(s.window_start)), xs[-1], color="#f2f2f2", zorder=0, label="window analysed")
    if alert_at is not None and xs[0] <= date2num(alert_at) <= xs[-1]:
        ax.axvline(float(date2num(alert_at)), color="#c62828", linestyle="--", linewidth=1.2, zorder=4,
                   label=f"alert started {alert_at:%H:%M}Z")
    if s.peak_at is not None:
        peak = min(pts, key=lambda p: abs((p[0] - s.peak_at).total_seconds()))  # type: ignore[operator]
        ax.scatter([float(date2num(peak[0]))], [peak[1]], color="#c62828", s=36, zorder=5, label=f"peak {peak[1]:.4g}")
    if check is not None and check.series is not None and check.series.values:
        after = check.series.points()
        color = "#2e7d32" if check.recovered else "#ef6c00"
        ax.plot([float(date2num(t)) for t, _ in after], [v for _, v in after], color=color, linewidth=1.6, zorder=3,
                label=f"after the fix: {check.after:.4g} ({'recovered' if check.recovered else 'NOT recovered'})"
                if check.after is not None else "after the fix")
    ax.set_title(_short(ev.query, 95), fontsize=9, loc="left", parse_math=False)
    ax.set_xlabel("UTC", fontsize=8)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.margins(x=0.01)
    ax.legend(fontsize=7, loc="best", framealpha=0.85)
    buf = io.BytesIO()
    if fmt == "svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": ev.id}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
    else:
        fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
