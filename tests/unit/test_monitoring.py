"""aiops watched like any service: its alert rules, their promtool tests, the Prometheus and Alertmanager
configuration, and the Grafana dashboard are checked by the real tools and kept to the metric names the
service really exports (interfaces/api/metrics.py), so none of them can rot silently."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from interfaces.api.metrics import ServiceMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DASHBOARD = DEPLOY / "grafana" / "aiops-dashboard.json"
_NAME = re.compile(r"\baiops_[a-z0-9_]+")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/setup.sh installs it)")
    return path


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=cwd)


def exported_names() -> set[str]:
    """Every sample name /metrics can carry (a histogram's _bucket/_sum/_count, a counter's _total)."""
    names: set[str] = set()
    for family in ServiceMetrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + s for s in suffixes}
    return names


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def aiops_rule_exprs() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "aiops.yml").read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def test_rule_files_pass_promtool_check() -> None:
    result = run(tool("promtool"), "check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_aiops_alerts_fire_when_they_should() -> None:
    result = run(tool("promtool"), "test", "rules", "aiops_test.yml", cwd=DEPLOY / "prometheus" / "tests")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "prometheus" / "tests" / "aiops_test.yml").read_text()))
    groups = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "aiops.yml").read_text())["groups"]
    assert tested == {r["alert"] for g in groups for r in g["rules"]}, "an aiops alert rule has no promtool test"


def test_prometheus_and_alertmanager_configs_are_valid(tmp_path: Path) -> None:
    # promtool checks that a scrape job's credentials file exists: the secret compose mounts stands in here
    secret = tmp_path / "api_token"
    secret.write_text("a-reader-token\n")
    config = tmp_path / "prometheus.yml"
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    assert "/run/secrets/api_token" in text
    config.write_text(text.replace("/run/secrets/api_token", str(secret)))
    prom = run(tool("promtool"), "check", "config", str(config))
    assert prom.returncode == 0, prom.stdout + prom.stderr
    am = run(tool("amtool"), "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml"))
    assert am.returncode == 0, am.stdout + am.stderr


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    exported = exported_names()
    used = {name for expr in [*aiops_rule_exprs(), *dashboard_exprs()] for name in _NAME.findall(expr)}
    assert used - exported == set(), f"not exported by aiops: {sorted(used - exported)}"
    # and every metric the service exports is on the dashboard or in a rule (a new one is not forgotten)
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    unwatched = {n for n in exported if re.sub(r"_(total|bucket|sum|count)$", "", n) not in families}
    assert unwatched <= {"aiops_circuit_breaker_failures"}, f"exported but on no panel: {sorted(unwatched)}"


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """promtool parses each panel query as a recording rule's expression (the real PromQL parser)."""
    exprs = [e.replace("$job", "aiops") for e in dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:panel_{i}", "expr": e}
                                                         for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and [v["name"] for v in dash["templating"]["list"]] == ["datasource", "job"]
