"""The bundled demo recordings: the metric ranking and the product's diagnosis put the known root cause first.

Two of the four are sustained/slow anomalies (a disk filling for 35 minutes, CPU pinned for 14) that a
fresh-change-only ranking misses; the other two (a crash loop with its caller as victim, a flapping
uplink) must stay right. Ranked through the same window the diagnosis uses (`detection_window`).
"""

from __future__ import annotations

import asyncio

import pytest

from agents.diagnosis import detection_window
from core.settings import Settings
from graphs.incident import incident_from_webhook, investigate
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.analysis.metric_anomaly import rank_components
from tools.replay.recording import load_recorded

TRUTH = {"disk-full": "backup-01", "vm-high-cpu": "php-fpm", "crashloop": "payments-api",
         "router-uplink-flap": "rtr-edge-01"}


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_metric_ranking_puts_the_root_cause_first(name: str) -> None:
    rec = load_recorded(recording(name))
    incident = incident_from_webhook(rec.webhook)
    baseline_start, start, end = detection_window(incident, rec.alert_time)
    ranked = asyncio.run(rank_components(rec.metrics_source(), start, end, baseline_start=baseline_start,
                                         call_graph=rec.call_graph))
    assert ranked[0].component == TRUTH[name], [(s.component, s.score) for s in ranked]
    assert ranked[0].anomalies, "the top suspect comes with metric evidence"
    if name in ("disk-full", "vm-high-cpu"):  # sustained: compared with the baseline, not a trailing level
        top = ranked[0].anomalies[0]
        assert top.direction == "up" and top.value > 1.25 * top.baseline


def test_victims_rank_below_their_callee() -> None:
    for name, victim in (("vm-high-cpu", "nginx"), ("crashloop", "checkout")):
        rec = load_recorded(recording(name))
        incident = incident_from_webhook(rec.webhook)
        b, s, e = detection_window(incident, rec.alert_time)
        ranked = asyncio.run(rank_components(rec.metrics_source(), s, e, baseline_start=b,
                                             call_graph=rec.call_graph))
        scores = {x.component: x.score for x in ranked}
        assert scores[victim] < 0.5 * scores[TRUTH[name]], scores


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_diagnosis_ranks_the_root_cause_first(settings: Settings, name: str) -> None:
    rec = load_recorded(recording(name))
    toolbox = make_toolbox_factory(settings)(replay_spec(recording(name), settings))
    report = asyncio.run(investigate(rec.webhook, toolbox))
    assert report.mode == "rules"
    assert report.hypotheses[0].component == TRUTH[name], [h.component for h in report.hypotheses]
