"""Real Prometheus -> real Alertmanager -> real `aiops serve`: the alert becomes an incident.

Prometheus evaluates a rule every second that fires at once (`vector(1)`, `for: 0s`); Alertmanager
groups for a second and posts to the webhook receiver configured exactly as the README tells users to
(`http_config.authorization` with the service's WEBHOOK_TOKEN). Skips only when the Debian binaries are
absent (CI installs `prometheus` and `prometheus-alertmanager`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import REPO, cli_env
from tests.servers import aiops_serve, free_port, wait_http

pytestmark = pytest.mark.e2e

TOKEN = "am-webhook-token-0123456789"
ALERT = "AiopsE2ECheckoutErrors"

RULES = f"""
groups:
  - name: aiops-e2e
    interval: 1s
    rules:
      - alert: {ALERT}
        expr: vector(1)
        for: 0s
        labels:
          severity: critical
          service: checkout
        annotations:
          summary: checkout is returning 5xx errors
"""


def readme_route() -> dict[str, object]:
    """The route of the README's "Alertmanager receiver" block, as a user copies it."""
    readme = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "receiver: aiops" in b)
    return dict(yaml.safe_load(block)["route"])


def alertmanager_config(webhook_url: str, **route: object) -> str:
    # What the README's "Alertmanager receiver" section shows (its route values), with the test's URL
    # and token; `route` overrides a value.
    values = {**readme_route(), **route}
    return f"""
route:
  receiver: aiops
  group_by: {json.dumps(values["group_by"])}
  group_wait: {values["group_wait"]}
  group_interval: {values["group_interval"]}
  repeat_interval: {values["repeat_interval"]}
receivers:
  - name: aiops
    webhook_configs:
      - url: {webhook_url}
        send_resolved: true
        max_alerts: 0
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"""


@contextmanager
def process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    out = log.open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def stack_commands(tmp_path: Path, prom: str, am: str, webhook_url: str, rules: str,
                   **route: object) -> tuple[list[str], list[str], int, int]:
    """Config files and command lines of a real Prometheus evaluating `rules` every second and a real
    Alertmanager routing to `webhook_url` (`route` overrides the receiver's route), both on loopback with
    their external URLs there too (so generatorURL and externalURL are links a test can follow)."""
    am_port, prom_port = free_port(), free_port()
    (tmp_path / "am.yml").write_text(alertmanager_config(webhook_url, **route))
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  evaluation_interval: 1s\n  scrape_interval: 15s\n"
        f"rule_files: [{tmp_path / 'rules.yml'}]\n"
        f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n"
        "scrape_configs: []\n")
    am_cmd = [am, f"--config.file={tmp_path / 'am.yml'}", f"--storage.path={tmp_path / 'am-data'}",
              f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=", "--log.level=warn",
              f"--web.external-url=http://127.0.0.1:{am_port}"]
    prom_cmd = [prom, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
                # the first evaluation may run before the Alertmanager target is discovered; re-send
                # every second instead of the default minute
                "--rules.alert.resend-delay=1s", f"--web.external-url=http://127.0.0.1:{prom_port}"]
    return am_cmd, prom_cmd, am_port, prom_port


def test_alert_from_real_alertmanager_becomes_an_incident(tmp_path: Path) -> None:
    prom, am = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    if not prom or not am:
        pytest.skip("prometheus / prometheus-alertmanager not installed (Debian packages)")
    env = cli_env(tmp_path, LLM_MODE="rules", WEBHOOK_TOKEN=TOKEN, PROMETHEUS_URL="")
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        am_cmd, prom_cmd, am_port, _ = stack_commands(tmp_path, prom, am, f"{svc.url}/webhook/alertmanager", RULES)
        with process(am_cmd, tmp_path / "am.log") as am_proc:
            wait_http(f"http://127.0.0.1:{am_port}/-/ready", 30, am_proc, tmp_path / "am.log")
            started = time.monotonic()  # Prometheus starts now; its rule fires at its first evaluation
            with process(prom_cmd, tmp_path / "prom.log"):
                deadline = time.monotonic() + 90
                found = None
                while time.monotonic() < deadline and found is None:
                    rows = httpx.get(f"{svc.url}/api/v1/incidents", timeout=5).json()["incidents"]
                    found = next((r for r in rows if r["title"].startswith(ALERT)), None)
                    time.sleep(0.2)
                elapsed = time.monotonic() - started
            logs = "\n".join(p.read_text(errors="replace")[-1500:] for p in
                             (tmp_path / "am.log", tmp_path / "prom.log", tmp_path / "serve.log"))
            assert found is not None, f"no {ALERT} incident within 90 s:\n{logs}"
            # The figure the README quotes for its receiver block (group_wait 10s): about 12 s, under 20 s.
            print(f"first incident {elapsed:.1f} s after Prometheus started (group_wait {readme_route()['group_wait']})")
            assert elapsed < 20, f"the first incident took {elapsed:.1f} s with the README's receiver block"
            assert found["title"] == f"{ALERT}: checkout is returning 5xx errors"
            report = httpx.get(f"{svc.url}/api/v1/incidents/{found['incident_id']}").json()
            alert = report["triage"]
            assert alert["kind"] == "incident" and alert["severity"] == "critical"
            metrics = httpx.get(f"{svc.url}/metrics").text
            received = next(ln for ln in metrics.splitlines() if ln.startswith("aiops_alerts_received_total "))
            assert float(received.split()[1]) >= 1
            assert 'aiops_alerts_rejected_total{reason="unauthorized"}' not in metrics  # the token matched


TWO_HOSTS_RULES = """
groups:
  - name: aiops-e2e-hosts
    interval: 1s
    rules:
      - alert: HostOutOfDiskSpace
        expr: >-
          label_replace(label_replace(vector(5.8), "host", "web-01", "", ""), "instance", "web-01:9100", "", "")
          or label_replace(label_replace(vector(5.8), "host", "web-02", "", ""), "instance", "web-02:9100", "", "")
        for: 0s
        labels:
          severity: critical
          job: node
          device: /dev/sda1
          fstype: ext4
          mountpoint: /
        annotations:
          summary: "Host out of disk space (instance {{ $labels.instance }})"
          description: "Disk is almost full (< 10% left)\\n  VALUE = {{ $value }}"
          runbook_url: "https://runbooks.example/host/{{ $labels.host }}/disk-full"
"""


def test_one_alertmanager_group_about_two_hosts_is_two_incidents(tmp_path: Path) -> None:
    """The README's `group_by: [alertname, service]` puts the same disk alert of web-01 and web-02 in one
    notification (they have no `service` label): two problems, two incidents, each plan on its own host."""
    prom, am = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    if not prom or not am:
        pytest.skip("prometheus / prometheus-alertmanager not installed (Debian packages)")
    env = cli_env(tmp_path, LLM_MODE="rules", WEBHOOK_TOKEN=TOKEN, PROMETHEUS_URL="", LOG_FORMAT="json")
    with aiops_serve(env, tmp_path / "serve.log") as svc:
        # the issue's grouping: the two hosts' alerts (no `service` label) are one group, one notification
        am_cmd, prom_cmd, am_port, prom_port = stack_commands(
            tmp_path, prom, am, f"{svc.url}/webhook/alertmanager", TWO_HOSTS_RULES,
            group_by=["alertname", "service"], group_wait="1s")
        with process(am_cmd, tmp_path / "am.log") as am_proc, process(prom_cmd, tmp_path / "prom.log"):
            wait_http(f"http://127.0.0.1:{am_port}/-/ready", 30, am_proc, tmp_path / "am.log")
            deadline = time.monotonic() + 90
            plans: dict[str, dict] = {}
            while time.monotonic() < deadline and len(plans) < 2:
                rows = httpx.get(f"{svc.url}/api/v1/incidents", timeout=5).json()["incidents"]
                for row in rows:
                    if row["title"].startswith("HostOutOfDiskSpace") and row["status"] == "awaiting_approval":
                        plans[row["incident_id"]] = httpx.get(
                            f"{svc.url}/api/v1/incidents/{row['incident_id']}", timeout=5).json()
                time.sleep(0.5)
            logs = "\n".join(p.read_text(errors="replace")[-3000:] for p in
                             (tmp_path / "am.log", tmp_path / "prom.log", tmp_path / "serve.log"))
            assert len(plans) == 2, f"expected two incidents awaiting approval within 90 s, got {list(plans)}:\n{logs}"
            by_host = {}
            for incident_id, report in plans.items():
                hosts = {a["labels"]["host"] for a in report["alerts"]} if "alerts" in report else set()
                targets = {a["target"] for a in report["plan"]["actions"]}
                assert len(targets) == 1, f"{incident_id}: plan acts on {targets}"
                (target,) = targets
                assert target in ("web-01", "web-02") and (not hosts or hosts == {target}), (incident_id, hosts, targets)
                assert report["related_total"] == 0, f"{incident_id} absorbed the other host: {report['related_alerts']}"
                # links back, from the real Prometheus (generatorURL) and Alertmanager (externalURL)
                links = {lk["kind"]: lk["url"] for lk in report["links"]}
                assert links["runbook"] == f"https://runbooks.example/host/{target}/disk-full"
                assert links["rule"].startswith(f"http://127.0.0.1:{prom_port}/graph?g0.expr=")
                assert links["silence"].startswith(f"http://127.0.0.1:{am_port}/#/silences/new?filter=")
                assert target in links["silence"]
                by_host[target] = incident_id
            assert set(by_host) == {"web-01", "web-02"}
            # The service said what it did: JSON lines naming the notification and both incidents.
            events = [json.loads(ln) for ln in (tmp_path / "serve.log").read_text().splitlines()
                      if ln.startswith("{") and '"event"' in ln]
            received = [e for e in events if e["event"] == "alert.received"]
            assert received and set(by_host.values()) <= {i for e in received for i in e["incident_ids"]}
            # Alertmanager sent both hosts' alerts in one notification: its 202 named both incidents
            both = [e for e in received if e["alerts"] == 2]
            assert both and all(set(e["incident_ids"]) == set(by_host.values()) for e in both), received
            assert {e["incident_id"] for e in events if e["event"] == "incident.opened"} >= set(by_host.values())
            assert {e["incident_id"] for e in events if e["event"] == "plan.proposed"} >= set(by_host.values())
