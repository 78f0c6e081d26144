"""Builds the four bundled demo recordings (deterministic; re-run to regenerate the JSON beside it).

They are hand-built recordings modelled on common small-infrastructure incidents, not captures from a
real site: 80 minutes of 30-second metrics before the alert and 15 after, log lines in the usual
formats of the software involved, and the aftermath of the fix as it typically looks. The evaluation
of diagnosis quality on data nobody on the team wrote is `aiops eval nezha` / `aiops eval loghub`.

    python -m tools.replay.incidents.build_demo_incidents
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

STEP = 30
BEFORE = timedelta(minutes=80)
AFTER = timedelta(minutes=15)
OUT = Path(__file__).parent


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def series(rng: random.Random, metric: str, labels: dict[str, str], t_alert: datetime,
           shape: Callable[[float], float], noise: float) -> dict[str, Any]:
    """shape(minutes relative to the alert) -> value; gaussian noise relative to the value."""
    start = t_alert - BEFORE
    n = int((BEFORE + AFTER).total_seconds() // STEP)
    values = []
    for i in range(n):
        m = (i * STEP - BEFORE.total_seconds()) / 60
        v = shape(m)
        values.append(round(max(0.0, v * (1 + rng.gauss(0, noise))), 4))
    return {"metric": metric, "labels": labels, "start": _iso(start), "step_seconds": STEP, "values": values}


def ramp(base: float, peak: float, begin: float, full: float, fixed: float | None = None,
         after: float | None = None) -> Callable[[float], float]:
    """base until `begin` min, linear to `peak` at `full`, back to `after` from `fixed` (minutes from alert)."""
    def f(m: float) -> float:
        if fixed is not None and m >= fixed:
            return base if after is None else after
        if m < begin:
            return base
        if m >= full:
            return peak
        return base + (peak - base) * (m - begin) / (full - begin)
    return f


def logs(rng: random.Random, t_alert: datetime, service: str, host: str, level: str, message: Callable[[int], str],
         per_min: float, begin: float, end: float) -> list[dict[str, Any]]:
    out = []
    m = begin
    i = 0
    while m < end:
        t = t_alert + timedelta(minutes=m, seconds=rng.uniform(0, 5))
        out.append({"timestamp": _iso(t), "service": service, "host": host, "level": level, "message": message(i)})
        m += rng.expovariate(per_min) if per_min > 0 else end
        i += 1
    return out


def webhook(alert_labels: dict[str, str], annotations: dict[str, str], starts: datetime, fingerprint: str,
            group_by: list[str]) -> dict[str, Any]:
    group_labels = {k: alert_labels[k] for k in group_by}
    return {
        "version": "4", "groupKey": "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}",
        "truncatedAlerts": 0, "status": "firing", "receiver": "aiops",
        "groupLabels": group_labels, "commonLabels": alert_labels, "commonAnnotations": annotations,
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{"status": "firing", "labels": alert_labels, "annotations": annotations,
                    "startsAt": _iso(starts), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example:9090/graph?g0.expr=...", "fingerprint": fingerprint}],
    }


def vm_high_cpu() -> dict[str, Any]:
    rng = random.Random(101)
    t = datetime(2026, 3, 9, 14, 32, tzinfo=UTC)
    labels = {"alertname": "HostHighCpuLoad", "instance": "web-01:9100", "job": "node", "host": "web-01",
              "severity": "warning", "pve_node": "pve-01", "vmid": "101"}
    met = [
        series(rng, "cpu_usage_percent", {"service": "php-fpm", "host": "web-01"}, t, ramp(22, 96, -14, -9), 0.05),
        series(rng, "cpu_usage_percent", {"service": "nginx", "host": "web-01"}, t, ramp(4, 5, -14, -9), 0.1),
        series(rng, "cpu_usage_percent", {"service": "mysql", "host": "db-01"}, t, ramp(18, 19, -14, -9), 0.08),
        series(rng, "request_latency_p95_seconds", {"service": "nginx", "host": "web-01"}, t,
               ramp(0.18, 2.4, -13, -8), 0.08),
        series(rng, "request_latency_p95_seconds", {"service": "mysql", "host": "db-01"}, t,
               ramp(0.004, 0.0045, -13, -8), 0.1),
        series(rng, "node_cpu_busy_percent", {"host": "web-01"}, t, ramp(27, 97, -14, -9), 0.03),
    ]
    lg = []
    lg += logs(rng, t, "nginx", "web-01", "info", lambda i: f'10.0.3.{i % 200} - - "GET /products/{i % 90} HTTP/1.1" 200 '
               f"{5000 + i % 700}", 8, -80, 0)
    lg += logs(rng, t, "php-fpm", "web-01", "warning", lambda i: "[pool www] server reached pm.max_children setting "
               "(50), consider raising it", 1.5, -13, 0)
    lg += logs(rng, t, "php-fpm", "web-01", "notice", lambda i: f"[pool www] child {20900 + i}, script "
               f"'/var/www/html/search.php' (request: \"GET /search.php?q=report-{i}\") executing too slow "
               f"({8 + i % 7}.{i % 10} sec), logging", 3, -14, 0)
    lg += logs(rng, t, "nginx", "web-01", "error", lambda i: f"upstream timed out (110: Connection timed out) while "
               f"reading response header from upstream, client: 10.0.3.{i % 200}, server: shop.example, request: "
               f"\"GET /search.php?q=x HTTP/1.1\", upstream: \"fastcgi://unix:/run/php/php8.2-fpm.sock:\"", 2, -8, 0)
    return {"name": "vm-high-cpu", "title": "High CPU on Proxmox VM web-01",
            "description": "A search endpoint's slow queries pile up PHP-FPM workers until the VM's CPU is pinned; "
                           "nginx times out on its upstream.",
            "webhook": webhook(labels, {"summary": "Host high CPU load (instance web-01:9100)",
                                        "description": "CPU load is > 80%\n  VALUE = 96.4"},
                               t - timedelta(minutes=5), "7c2e1b9d4a5f6e30", ["alertname", "instance"]),
            "alert_time": _iso(t), "call_graph": {"nginx": ["php-fpm"], "php-fpm": ["mysql"]},
            "metrics": met, "logs": lg, "hosts": {}}


def disk_full() -> dict[str, Any]:
    rng = random.Random(202)
    t = datetime(2026, 3, 10, 3, 47, tzinfo=UTC)
    labels = {"alertname": "HostOutOfDiskSpace", "instance": "backup-01:9100", "job": "node", "host": "backup-01",
              "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/", "severity": "critical"}
    met = [
        series(rng, "filesystem_used_percent", {"service": "backup-01", "mountpoint": "/"}, t,
               ramp(71, 94, -35, 0, fixed=3, after=62), 0.004),
        series(rng, "cpu_usage_percent", {"service": "backup-01"}, t, ramp(12, 14, -35, 0), 0.1),
        series(rng, "cpu_usage_percent", {"service": "postgres"}, t, ramp(9, 9.5, -35, 0), 0.1),
        series(rng, "disk_write_bytes_per_second", {"service": "postgres"}, t, ramp(2.1e6, 2.3e6, -35, 0), 0.1),
    ]
    lg = []
    lg += logs(rng, t, "cron", "backup-01", "info", lambda i: "(root) CMD (/usr/local/bin/pg-backup --incremental)",
               0.2, -80, 0)
    lg += logs(rng, t, "logrotate", "backup-01", "error", lambda i: "error: error compressing "
               f"/var/log/app/app.log.{1 + i % 9}: No space left on device", 0.8, -30, 0)
    lg += logs(rng, t, "postgres", "backup-01", "warning", lambda i: "could not write to file "
               f"\"pg_wal/xlogtemp.{4100 + i}\": No space left on device", 0.6, -9, 0)
    files = [{"path": f"/var/log/app/app.log.{i}.gz", "size_kb": 512, "age_days": 4 + i} for i in range(1, 9)]
    files += [{"path": "/var/log/app/app.log", "size_kb": 64, "age_days": 0},
              {"path": "/var/log/app/app.log.1", "size_kb": 256, "age_days": 1}]
    return {"name": "disk-full", "title": "Disk almost full on backup-01",
            "description": "Rotated application logs accumulate after a logrotate misconfiguration until / is "
                           "94% full and PostgreSQL starts failing WAL writes.",
            "webhook": webhook(labels, {"summary": "Host out of disk space (instance backup-01:9100)",
                                        "description": "Disk is almost full (< 10% left)\n  VALUE = 5.8"},
                               t - timedelta(minutes=2), "3f9a0c21be7d4411", ["alertname", "instance"]),
            "alert_time": _iso(t), "recovery_after_seconds": 600, "call_graph": None,
            "metrics": met, "logs": lg, "hosts": {"backup-01": {"files": files}}}


def crashloop() -> dict[str, Any]:
    rng = random.Random(303)
    t = datetime(2026, 3, 11, 9, 12, tzinfo=UTC)
    labels = {"alertname": "ServiceCrashLooping", "service": "payments-api", "host": "app-02",
              "instance": "app-02:9100", "job": "systemd", "severity": "critical"}
    met = [
        series(rng, "service_restarts_per_minute", {"service": "payments-api", "host": "app-02"}, t,
               ramp(0.0, 4.0, -11, -10, fixed=3, after=0.0), 0.1),
        series(rng, "cpu_usage_percent", {"service": "payments-api", "host": "app-02"}, t,
               ramp(31, 8, -11, -10, fixed=3, after=30), 0.1),
        series(rng, "http_error_ratio", {"service": "checkout", "host": "app-01"}, t,
               ramp(0.002, 0.31, -11, -9, fixed=4, after=0.002), 0.1),
        series(rng, "request_latency_p95_seconds", {"service": "checkout", "host": "app-01"}, t,
               ramp(0.21, 0.38, -11, -9, fixed=4, after=0.21), 0.06),
        series(rng, "cpu_usage_percent", {"service": "postgres", "host": "db-02"}, t, ramp(24, 15, -11, -9), 0.1),
    ]
    lg = []
    lg += logs(rng, t, "payments-api", "app-02", "info", lambda i: f"POST /v1/charges 201 {40 + i % 30}ms "
               f"request_id={rng.getrandbits(48):012x}", 6, -80, -12)
    lg += logs(rng, t, "payments-api", "app-02", "info", lambda i: "starting payments-api v2.14.0 (commit 9e1c2ab)",
               0.02, -80, -12)
    lg += logs(rng, t, "deploy", "app-02", "info", lambda i: "deployed payments-api v2.14.1 (config revision 118) by "
               "ci-runner", 0.01, -12, -11.5)
    lg += logs(rng, t, "payments-api", "app-02", "info", lambda i: "starting payments-api v2.14.1 (commit 51f0d3e)",
               4, -11, 3)
    lg += logs(rng, t, "payments-api", "app-02", "critical", lambda i: "FATAL failed to load config "
               "/etc/payments-api/config.yaml: yaml: line 14: mapping values are not allowed in this context",
               4, -11, 3)
    lg += logs(rng, t, "systemd", "app-02", "error", lambda i: "payments-api.service: Main process exited, "
               f"code=exited, status=1/FAILURE (restart counter is at {i + 1})", 4, -11, 3)
    lg += logs(rng, t, "checkout", "app-01", "error", lambda i: f"POST /v1/charges -> 503 upstream payments-api "
               f"unavailable order_id={rng.getrandbits(40):010x}", 3, -10, 4)
    lg += logs(rng, t, "payments-api", "app-02", "info", lambda i: f"POST /v1/charges 201 {40 + i % 30}ms "
               f"request_id={rng.getrandbits(48):012x}", 6, 3.5, 15)
    good = "server:\n  listen: 0.0.0.0:8443\ndatabase:\n  dsn: postgres://payments@db-02/payments\n"
    bad = good + "  pool: max: 20\n"
    return {"name": "crashloop", "title": "payments-api crash-looping after a deploy",
            "description": "A deploy ships a malformed YAML config; payments-api exits at start-up, systemd restarts "
                           "it every 15 s and checkout returns 503s.",
            "webhook": webhook(labels, {"summary": "payments-api is restarting repeatedly on app-02",
                                        "description": "systemd restarted payments-api 37 times in 10 minutes"},
                               t - timedelta(minutes=3), "a41d9c7e02b35f88", ["alertname", "service"]),
            "alert_time": _iso(t), "recovery_after_seconds": 600,
            "call_graph": {"checkout": ["payments-api"], "payments-api": ["postgres"]},
            "metrics": met, "logs": lg,
            "hosts": {"app-02": {"files": [
                {"path": "/etc/payments-api/config.yaml", "content": bad},
                {"path": "/etc/payments-api/config.yaml.last-good", "content": good}]}}}


def router_flap() -> dict[str, Any]:
    rng = random.Random(404)
    t = datetime(2026, 3, 12, 18, 5, tzinfo=UTC)
    labels = {"alertname": "RouterInterfaceFlapping", "instance": "rtr-edge-01", "host": "rtr-edge-01",
              "interface": "ether1-isp-a", "job": "snmp", "severity": "warning"}
    met = [
        series(rng, "interface_carrier_changes_per_minute", {"service": "rtr-edge-01", "interface": "ether1-isp-a"}, t,
               ramp(0.0, 5.0, -16, -15), 0.15),
        series(rng, "interface_rx_errors_per_second", {"service": "rtr-edge-01", "interface": "ether1-isp-a"}, t,
               ramp(0.1, 45.0, -16, -15), 0.2),
        series(rng, "interface_rx_errors_per_second", {"service": "rtr-edge-01", "interface": "ether2-isp-b"}, t,
               ramp(0.1, 0.1, -16, -15), 0.2),
        series(rng, "probe_rtt_seconds", {"service": "uplink-probe", "target": "1.1.1.1"}, t,
               ramp(0.012, 0.09, -16, -14), 0.1),
    ]
    lg = []
    lg += logs(rng, t, "rtr-edge-01", "rtr-edge-01", "info", lambda i: "ether1-isp-a link down", 2.5, -16, 0)
    lg += logs(rng, t, "rtr-edge-01", "rtr-edge-01", "info", lambda i: "ether1-isp-a link up (speed 1G, full duplex)",
               2.5, -16, 0)
    lg += logs(rng, t, "rtr-edge-01", "rtr-edge-01", "warning", lambda i: "route 0.0.0.0/0 via 100.64.12.1 "
               "(ether1-isp-a) changed state: inactive", 1.2, -15, 0)
    lg += logs(rng, t, "rtr-edge-01", "rtr-edge-01", "info", lambda i: f"dhcp,info dhcp-lan assigned "
               f"192.168.88.{20 + i % 200} to AA:BB:CC:{i % 99:02d}:10:01", 0.5, -80, 0)
    return {"name": "router-uplink-flap", "title": "Flapping ISP uplink on rtr-edge-01",
            "description": "The primary ISP uplink's carrier flaps every few seconds (bad SFP or cable); default "
                           "route churns and latency to the internet rises.",
            "webhook": webhook(labels, {"summary": "Interface ether1-isp-a on rtr-edge-01 is flapping",
                                        "description": "ifOperStatus changed 5 times per minute for 10 minutes"},
                               t - timedelta(minutes=4), "e0b7a3c9d1f24456", ["alertname", "instance"]),
            "alert_time": _iso(t), "call_graph": None, "metrics": met, "logs": lg, "hosts": {}}


def main() -> None:
    for build in (vm_high_cpu, disk_full, crashloop, router_flap):
        data = build()
        path = OUT / f"{data['name']}.json"
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {path} ({len(data['metrics'])} series, {len(data['logs'])} log lines)")


if __name__ == "__main__":
    main()
