"""The webhook's figures in shared memory: each intake process writes its own slot, /metrics sums them."""

from __future__ import annotations

from multiprocessing import get_context
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from interfaces.api.metrics import IntakeCounters


def _count_in_child(shared: Any, slot: int) -> None:
    counters = IntakeCounters(shared=shared, slot=slot)
    counters.received(20)
    counters.rejected("invalid")
    counters.observe(202, 0.004)


def exposition(counters: IntakeCounters) -> str:
    registry = CollectorRegistry()
    registry.register(counters)
    return generate_latest(registry).decode()


def test_slots_of_every_process_are_summed() -> None:
    counters = IntakeCounters(processes=2)
    counters.received(3)
    counters.rejected("unauthorized")
    counters.observe(401, 0.0005)
    child = get_context("spawn").Process(target=_count_in_child, args=(counters.shared, 1))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    text = exposition(counters)
    assert "aiops_alerts_received_total 23.0" in text
    assert 'aiops_alerts_rejected_total{reason="unauthorized"} 1.0' in text
    assert 'aiops_alerts_rejected_total{reason="invalid"} 1.0' in text
    assert 'reason="queue_unavailable"' not in text  # a reason appears once it happened, as with a Counter
    assert 'aiops_webhook_request_duration_seconds_count{status="202"} 1.0' in text
    assert 'aiops_webhook_request_duration_seconds_count{status="401"} 1.0' in text


def test_histogram_buckets_are_cumulative_with_le_bounds() -> None:
    counters = IntakeCounters()
    for seconds in (0.001, 0.0011, 0.3, 20.0):  # 0.001 is on a bound: it counts in le="0.001"
        counters.observe(202, seconds)
    counters.observe(418, 0.01)
    text = exposition(counters)
    assert 'aiops_webhook_request_duration_seconds_bucket{le="0.001",status="202"} 1.0' in text
    assert 'aiops_webhook_request_duration_seconds_bucket{le="0.0025",status="202"} 2.0' in text
    assert 'aiops_webhook_request_duration_seconds_bucket{le="0.5",status="202"} 3.0' in text
    assert 'aiops_webhook_request_duration_seconds_bucket{le="10.0",status="202"} 3.0' in text
    assert 'aiops_webhook_request_duration_seconds_bucket{le="+Inf",status="202"} 4.0' in text
    assert 'aiops_webhook_request_duration_seconds_sum{status="202"} 20.3021' in text
    assert 'aiops_webhook_request_duration_seconds_count{status="other"} 1.0' in text
