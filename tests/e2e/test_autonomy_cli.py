"""`aiops watch` and `aiops self-healing` as separate processes on one data dir."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.test_cli import aiops

pytestmark = pytest.mark.e2e


def syslog(path: Path, errors_since_minutes: int | None) -> None:
    """An hour of payments requests; with errors in the last minutes when asked."""
    rng = random.Random(3)
    now = datetime.now(UTC)
    lines = []
    t = now - timedelta(minutes=70)
    while t <= now:
        stamp = f"{t:%b} {t.day:>2} {t:%H:%M:%S}"
        lines.append(f"{stamp} app-01 payments[812]: POST /pay 200 in {rng.randint(20, 60)} ms")
        if errors_since_minutes is not None and t >= now - timedelta(minutes=errors_since_minutes):
            lines += [f"{stamp} app-01 payments[812]: ERROR connection refused to pg-primary:5432 (attempt {k})"
                      for k in (1, 2, 3)]
        t += timedelta(seconds=15)
    path.write_text("\n".join(lines) + "\n")


def test_watch_once_raises_then_stays_quiet_while_open(tmp_path: Path):
    log = tmp_path / "payments.log"
    syslog(log, errors_since_minutes=3)
    first = aiops(tmp_path, "watch", "--once", "--services", "payments", "--json", LOG_FILES=str(log))
    assert first.returncode == 0, first.stderr
    raised = json.loads(first.stdout.strip().splitlines()[-1])
    assert raised["status"] == "firing" and raised["service"] == "payments"
    assert raised["incident_status"] == "awaiting_approval"
    again = aiops(tmp_path, "watch", "--once", "--services", "payments", LOG_FILES=str(log))
    assert again.returncode == 0 and "nothing raised for payments" in again.stdout
    listed = json.loads(aiops(tmp_path, "incidents", "--json").stdout)["incidents"]
    assert [i["incident_id"] for i in listed] == [raised["incident_id"]]
    assert listed[0]["title"].startswith("AiopsAnomalyDetected: payments")


def test_watch_configuration_errors_are_one_line(tmp_path: Path):
    none = aiops(tmp_path, "watch", "--once")
    assert none.returncode == 2 and none.stderr.strip() == (
        "aiops: error: no services to watch: set WATCH_SERVICES or pass --services a,b")
    nothing = aiops(tmp_path, "watch", "--once", WATCH_SERVICES="payments")
    assert nothing.returncode == 2 and "configure PROMETHEUS_URL, ELASTICSEARCH_URL or LOG_FILES" in nothing.stderr


def test_self_healing_switch_is_seen_by_another_process(tmp_path: Path):
    assert json.loads(aiops(tmp_path, "self-healing", "--json").stdout)["enabled"] is True
    refused = aiops(tmp_path, "self-healing", "off")
    assert refused.returncode == 2 and "--by NAME is required" in refused.stderr
    off = aiops(tmp_path, "self-healing", "off", "--by", "alice")
    assert off.returncode == 0 and "self-healing OFF" in off.stdout and "by alice" in off.stdout
    status = json.loads(aiops(tmp_path, "self-healing", "--json").stdout)
    assert status["enabled"] is False and status["changed_by"] == "alice"
    bad = aiops(tmp_path, "self-healing", POLICY_FILE=str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and bad.stderr.startswith("aiops: error: cannot read POLICY_FILE")


def test_a_policy_rule_that_could_never_fire_stops_the_start_in_one_line(tmp_path: Path):
    """Issue 17: a POLICY_FILE rule naming an action without auto-approval bounds used to be accepted and
    never fire; the worker (and serve, analyze) now refuses to start, with one line saying why."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {name: restart-web, actions: [restart_service], targets: ['web-*'], "
                      "max_risk: medium}\n")
    out = aiops(tmp_path, "worker", "--concurrency", "1", POLICY_FILE=str(policy))
    assert out.returncode == 2, out.stdout
    assert out.stderr.strip() == (f"aiops: error: POLICY_FILE {policy}: rule 'restart-web' names restart_service, "
                                  "which has no auto-approval bounds and can never run without a human")
