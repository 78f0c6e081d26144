"""`aiops eval fixes`: the typical problems of this product's infrastructure, fixed live, and the near-misses.

Each scenario builds a fresh world, fires the alert a real exporter would send, and runs it through the
product's own graph (`service.runner.IncidentRunner`, rule mode, every toolset live):

- Proxmox VE through the real proxmoxer against the PVE API simulator (tests/sim/proxmox.py);
- RouterOS through the real librouteros against the RouterOS API simulator (tests/sim/routeros.py);
- hosts through the real ansible-playbook against local stand-in hosts (sandbox directories with
  `connection: local`; a unit's state is the JSON `systemctl show` would print; `apt-get clean` is the
  real apt-get), their filesystem series served as node_exporter would (tests/sim/node_exporter.py:
  the history up to the alert, then the stand-in's live usage), their logs read by the file log source.

The policy is a POLICY_FILE that allows every catalog action with auto-approval bounds (what an operator
who wants self-healing of these problems would write). A stand-in human approves a proposal of the
scenario's right fix (never anything else), so fixes that always need a human are verified too.

Per scenario: whether the right fix was proposed, whether it ran automatically where the policy allows
it, whether verification confirmed it, and the wrong actions: any action proposed that is not the right
fix or an acceptable alternative, and any automatic run where none may happen. Wrong actions must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.models import AlertmanagerWebhook
from core.settings import load_settings
from evals.report import finish
from tools.executor import ActionExecutor
from tools.registry import toolset
from tools.replay.recording import SandboxFile, StandInHost
from tools.replay.standins import prepare_hosts

SUITE = "fixes"
# Every catalog action with auto-approval bounds, allowed on every target up to medium risk.
POLICY = """rules:
  - name: typical-problems
    actions: [cleanup_rotated_logs, journald_vacuum, apt_clean, certbot_renew, restart_failed_unit,
              proxmox_guest_start, routeros_interface_enable]
    targets: ["*"]
    max_risk: medium
"""
MIB = 1024  # SandboxFile sizes are in KiB


class Expect(BaseModel):
    fix: str | None  # the right catalog action; None: a near-miss that must not be fixed
    automatic: bool = False  # under the eval's policy it runs without a human
    may_propose: list[str] = Field(default_factory=list)  # acceptable as a proposal to a human, never automatic
    rule: str = ""  # the self-healing guard that must send it to a human (e.g. "flap-guard")


@dataclass
class World:
    """What a scenario may use: its temp dir, the simulators it started, the settings overrides."""

    tmp: Path
    pve: Any = None
    rtr: Any = None
    hosts: dict[str, Any] = field(default_factory=dict)  # name -> StandInHost
    mounts: list[Any] = field(default_factory=list)  # node_exporter stand-ins
    log_lines: list[str] = field(default_factory=list)
    acme: Any = None  # a local ACME CA (pebble) for certificate scenarios
    after_hosts: list[Callable[[Path], None]] = field(default_factory=list)  # run once the stand-ins exist
    settings: dict[str, Any] = field(default_factory=dict)
    alert_time: datetime = field(default_factory=lambda: datetime.now(UTC))


Step = Callable[[World], Any]  # builds (and may change the world before) one alert: an AlertmanagerWebhook


@dataclass
class Scenario:
    name: str
    problem: str
    system: str  # pve | routeros | host
    expect: Expect
    steps: list[Step]  # earlier steps are preconditions (fired and completed); the last one is scored


def webhook(labels: dict[str, str], summary: str, fingerprint: str = "", minutes_ago: float = 6) -> Any:
    alert = {"status": "firing", "labels": labels, "annotations": {"summary": summary},
             "startsAt": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
             "fingerprint": fingerprint or labels["alertname"][:16].replace("/", "")}
    return AlertmanagerWebhook.model_validate({"version": "4", "groupKey": f"{{}}:{labels['alertname']}",
                                               "status": "firing", "receiver": "aiops", "alerts": [alert]})


# ------------------------------------------------------------------------------ Proxmox VE --
def _pve_down(vmid: int) -> Step:
    def step(w: World) -> Any:
        return webhook({"alertname": "PveVm/ctDown", "id": f"qemu/{vmid}", "instance": "pve-exporter:9221",
                        "job": "pve", "severity": "warning"}, f"PVE VM/CT down (qemu/{vmid})")
    return step


def _crash(vmid: int, then: Step) -> Step:
    def step(w: World) -> Any:
        w.pve.crash(vmid)
        return then(w)
    return step


def _stop_by(vmid: int, user: str, then: Step) -> Step:
    def step(w: World) -> Any:
        w.pve.stop_by(vmid, user)
        return then(w)
    return step


def _ha_crash(vmid: int, then: Step) -> Step:
    def step(w: World) -> Any:
        w.pve.guest(vmid)[1].ha_managed = True
        w.pve.crash(vmid)
        return then(w)
    return step


def _pve_hot(vmid: int, memory: bool) -> Step:
    def step(w: World) -> Any:
        w.pve.heat(vmid, minutes_ago=14, cpu=not memory, memory=memory)
        name = "PveHighMemoryUsage" if memory else "PveHighCpuUsage"
        return webhook({"alertname": name, "id": f"qemu/{vmid}", "instance": "pve-exporter:9221", "job": "pve",
                        "severity": "warning"}, f"PVE high {'memory' if memory else 'CPU'} usage (qemu/{vmid})",
                       minutes_ago=8)
    return step


def _third_node(then: Step) -> Step:
    """A three-node cluster (rebooting one keeps quorum): pve-03 runs app-03 (starts at boot) and
    batch-03 (does not)."""
    def step(w: World) -> Any:
        from tests.sim.proxmox import Guest

        w.pve.add_node("pve-03", {120: Guest(120, "app-03"), 121: Guest(121, "batch-03", onboot=False)})
        return then(w)
    return step


def _pve_node_hot(node: str, minutes: float, memory: bool = False) -> Step:
    """Host-level load on `node` since `minutes` ago; the pve-exporter alert about the node."""
    def step(w: World) -> Any:
        w.pve.heat_node(node, minutes_ago=minutes, cpu=not memory, memory=memory)
        name = "PveHighMemoryUsage" if memory else "PveHighCpuUsage"
        return webhook({"alertname": name, "id": f"node/{node}", "instance": "pve-exporter:9221", "job": "pve",
                        "severity": "warning"}, f"PVE high {'memory' if memory else 'CPU'} usage (node/{node})",
                       minutes_ago=min(minutes, 8))
    return step


# --------------------------------------------------------------------------------- RouterOS --
def _flapping(iface: str) -> Step:
    def step(w: World) -> Any:
        return webhook({"alertname": "RouterInterfaceFlapping", "instance": "rtr-edge-01", "host": "rtr-edge-01",
                        "interface": iface, "job": "snmp", "severity": "warning"},
                       f"Interface {iface} on rtr-edge-01 is flapping")
    return step


def _no_backup(then: Step) -> Step:
    def step(w: World) -> Any:
        w.rtr.router.routes = [r for r in w.rtr.router.routes if r.id != "*2"]  # no second default route
        return then(w)
    return step


def _iface_down(iface: str, by: str | None) -> Step:
    def step(w: World) -> Any:
        i = w.rtr.router.iface(iface)
        i.disabled, i.running = True, False
        if by:
            w.rtr.router.changed_by(iface, by, True)
        return webhook({"alertname": "RouterInterfaceDown", "instance": "rtr-edge-01", "host": "rtr-edge-01",
                        "interface": iface, "job": "snmp", "severity": "critical"},
                       f"Interface {iface} on rtr-edge-01 is down")
    return step


# ------------------------------------------------------------------------------------ hosts --
def _disk_alert(host: str, mount: str = "/") -> Any:
    return webhook({"alertname": "HostOutOfDiskSpace", "instance": f"{host}:9100", "host": host, "job": "node",
                    "mountpoint": mount, "device": "/dev/sda1", "fstype": "ext4", "severity": "critical"},
                   f"Host out of disk space (instance {host}:9100)")


def _disk(host: str, files: list[Any], mount: str = "/", capacity_mb: int = 400, other_mb: int = 290,
          alert_host: str | None = None, metrics_host: str | None = None) -> Step:
    """A stand-in `host` holding `files`, its mount filling (node_exporter's series about `metrics_host`),
    and the disk alert about `alert_host` (both default to `host`)."""
    def step(w: World) -> Any:
        from tests.sim.node_exporter import StandInMount

        w.hosts[host] = StandInHost(files=files)
        w.mounts.append(StandInMount(host=metrics_host or host, mount=mount, root=w.tmp / "standins" / host,
                                     capacity_bytes=capacity_mb * 1024**2, other_bytes=other_mb * 1024**2))
        return _disk_alert(alert_host or host, mount)
    return step


def _rotated(n: int, mib: int) -> list[Any]:
    return [SandboxFile(path=f"/var/log/app/app.log.{i}.gz", size_kb=mib * MIB, age_days=3 + i) for i in range(1, n + 1)]


def _journal(archived: int, mib: int, limit_mb: int) -> list[Any]:
    return [*(SandboxFile(path=f"/var/log/journal/0a1b/system@0a1b-{i:016x}-0006{i:012x}.journal",
                          size_kb=mib * MIB, age_days=archived - i) for i in range(archived)),
            SandboxFile(path="/var/log/journal/0a1b/system.journal", size_kb=8 * MIB),
            SandboxFile(path="/etc/systemd/journald.conf", content=f"[Journal]\nSystemMaxUse={limit_mb}M\n")]


def _debs(n: int, mib: int) -> list[Any]:
    return [SandboxFile(path=f"/var/cache/apt/archives/pkg{i}_1.0_amd64.deb", size_kb=mib * MIB) for i in range(n)]


def _data(mib: int) -> list[Any]:
    return [SandboxFile(path="/data/db/ibdata1", size_kb=mib * MIB)]


def _unit(host: str, unit: str, restarts: int, alert: str, config_error: bool = False) -> Step:
    def step(w: World) -> Any:
        state: dict[str, str | int] = {"ActiveState": "failed", "SubState": "failed", "Result": "exit-code",
                                       "NRestarts": restarts}
        files = []
        if config_error:
            conf = f"/etc/{unit}/config.yaml"
            files = [SandboxFile(path=conf, content="listen: :8080\nbad: [unclosed\n"),
                     SandboxFile(path=conf + ".last-good", content="listen: :8080\n")]
            now = datetime.now(UTC)
            for k in range(restarts):  # the crash loop, until systemd gave up a few minutes ago
                t = now - timedelta(minutes=9) + timedelta(seconds=20 * k)
                w.log_lines.append(f"{t:%b} {t.day:>2} {t:%H:%M:%S} {host} {unit}[{900 + k}]: FATAL failed to load "
                                   f"config {conf}: yaml: line 2: did not find expected ',' or ']'")
        w.hosts[host] = StandInHost(files=files, units={unit: state})
        labels = ({"alertname": "HostSystemdServiceCrashed", "name": f"{unit}.service", "state": "failed",
                   "instance": f"{host}:9100", "job": "node", "severity": "warning"} if alert == "failed" else
                  {"alertname": "ServiceCrashLooping", "service": unit, "host": host, "instance": f"{host}:9100",
                   "job": "systemd", "severity": "critical"})
        return webhook(labels, f"{unit} on {host}: {alert}")
    return step


def _certificate(host: str, domain: str, days_left: float | None) -> Step:
    """`host` runs certbot; with `days_left`, its lineage for `domain` (issued by the local ACME CA) expires
    that soon. The probe's alert names the domain and the host serving it."""
    def step(w: World) -> Any:
        w.hosts[host] = StandInHost(vars={"aiops_acme_ca_bundle": w.acme.ca_file})
        if days_left is not None:
            def lineage(standins: Path, left: float = days_left) -> None:
                w.acme.issue(standins / host, domain)
                w.acme.age(standins / host, domain, left)

            w.after_hosts.append(lineage)
        return webhook({"alertname": "BlackboxSslCertificateWillExpireSoon", "instance": f"https://{domain}",
                        "host": host, "job": "blackbox", "severity": "warning"},
                       f"SSL certificate of https://{domain} expires soon")
    return step


SCENARIOS: list[Scenario] = [
    Scenario("pve-guest-crashed", "a guest killed under the host (stopped, its last start OK, no stop task)", "pve",
             Expect(fix="proxmox_guest_start", automatic=True), [_crash(101, _pve_down(101))]),
    Scenario("pve-guest-crashes-again", "the same guest crashes again within the flap window", "pve",
             Expect(fix="proxmox_guest_start", rule="flap-guard"),
             [_crash(101, _pve_down(101)), _crash(101, _pve_down(101))]),
    Scenario("pve-guest-stopped-on-purpose", "near-miss: an operator shut the guest down", "pve",
             Expect(fix=None, may_propose=["proxmox_guest_start"]), [_stop_by(102, "alice@pve", _pve_down(102))]),
    Scenario("pve-guest-ha-managed", "near-miss: the HA manager owns the stopped guest", "pve",
             Expect(fix=None), [_ha_crash(103, _pve_down(103))]),
    Scenario("pve-guest-cpu-sustained", "a guest's CPU saturated for the sustained window", "pve",
             Expect(fix="proxmox_guest_set_cores", may_propose=["proxmox_vm_reboot"]), [_pve_hot(101, memory=False)]),
    Scenario("pve-guest-memory-sustained", "a guest's memory saturated for the sustained window", "pve",
             Expect(fix="proxmox_guest_set_memory", may_propose=["proxmox_vm_reboot"]), [_pve_hot(102, memory=True)]),
    Scenario("pve-node-cpu-sustained", "a node's own CPU saturated for the sustained window (3-node cluster)",
             "pve", Expect(fix="proxmox_node_reboot"), [_third_node(_pve_node_hot("pve-03", 14))]),
    Scenario("pve-node-cpu-brief", "near-miss: a node's CPU saturated for 5 minutes only", "pve",
             Expect(fix=None), [_third_node(_pve_node_hot("pve-03", 5))]),
    Scenario("pve-node-two-node-cluster", "near-miss: a node's memory saturated, but rebooting it costs quorum",
             "pve", Expect(fix=None), [_pve_node_hot("pve-01", 14, memory=True)]),
    Scenario("router-uplink-flapping", "an uplink flapping (20 link downs in the router's log), backup route up",
             "routeros", Expect(fix="routeros_interface_disable"), [_flapping("ether1-isp-a")]),
    Scenario("router-flap-without-backup", "near-miss: flapping, but no other path for its routes", "routeros",
             Expect(fix=None), [_no_backup(_flapping("ether1-isp-a"))]),
    Scenario("router-interface-disabled", "an interface disabled, nobody's change in the router's log", "routeros",
             Expect(fix="routeros_interface_enable", automatic=True), [_iface_down("ether2-isp-b", None)]),
    Scenario("router-interface-disabled-by-person", "near-miss: an operator disabled the interface", "routeros",
             Expect(fix=None), [_iface_down("ether2-isp-b", "alice")]),
    Scenario("host-unit-failed", "a systemd unit failed once (1 restart)", "host",
             Expect(fix="restart_failed_unit", automatic=True, may_propose=["restart_service"]),
             [_unit("web-01", "nginx", 1, "failed")]),
    Scenario("host-unit-crashloop-config", "a unit crash-looping on a configuration error", "host",
             Expect(fix="rollback_config", may_propose=["restart_service"]),
             [_unit("app-02", "payments-api", 9, "crashloop", config_error=True)]),
    Scenario("disk-rotated-logs", "a filling mount: rotated logs", "host",
             Expect(fix="cleanup_rotated_logs", automatic=True), [_disk("backup-01", _rotated(6, 12))]),
    Scenario("disk-journal", "a filling mount: the journal over its limit", "host",
             Expect(fix="journald_vacuum", automatic=True),
             [_disk("log-01", _journal(6, 24, 64), capacity_mb=300, other_mb=120)]),
    Scenario("disk-package-cache", "a filling mount: the package cache", "host",
             Expect(fix="apt_clean", automatic=True), [_disk("build-01", _debs(8, 10))]),
    Scenario("tls-certificate-expiring", "a certbot certificate 5 days from expiry (a real ACME CA, pebble)",
             "acme", Expect(fix="certbot_renew", automatic=True),
             [_certificate("web-01", "shop.example.test", 5)]),
    Scenario("tls-certificate-not-certbot", "near-miss: the expiring certificate is not certbot's", "acme",
             Expect(fix=None), [_certificate("web-01", "shop.example.test", None)]),
    Scenario("disk-non-log-data", "near-miss: /data filling with database files", "host",
             Expect(fix=None), [_disk("db-01", _data(80), mount="/data", other_mb=300)]),
    Scenario("disk-evidence-from-another-host", "near-miss: the alert names web-01, the readings are backup-01's",
             "host", Expect(fix=None, may_propose=["cleanup_rotated_logs"]),
             [_disk("web-01", _rotated(1, 1), metrics_host="backup-01")]),
]


# --------------------------------------------------------------------------------- running --
@contextmanager
def _world(scenario: Scenario, tmp: Path) -> Iterator[World]:
    w = World(tmp=tmp)
    with ExitStack() as stack:
        if scenario.system == "pve":
            from tests.sim.proxmox import ProxmoxSim

            w.pve = stack.enter_context(ProxmoxSim())
            w.settings.update(PROXMOX_HOST=w.pve.host, PROXMOX_USER=w.pve.user, PROXMOX_TOKEN_NAME=w.pve.token_name,
                              PROXMOX_TOKEN_VALUE=w.pve.token_value, PROXMOX_CA_BUNDLE=w.pve.ca_file,
                              PROXMOX_TASK_TIMEOUT=20)
        if scenario.system == "acme":
            from tests.sim.acme import pebble

            w.acme = stack.enter_context(pebble())
        if scenario.system == "routeros":
            from tests.sim.routeros import RouterOSSim

            w.rtr = stack.enter_context(RouterOSSim())
            w.settings.update(MIKROTIK_HOST="127.0.0.1", MIKROTIK_PORT=w.rtr.port, MIKROTIK_USER=w.rtr.user,
                              MIKROTIK_PASSWORD=w.rtr.password, MIKROTIK_TIMEOUT=5)
        yield w


def _settings(w: World) -> Any:
    policy = w.tmp / "policy.yaml"
    policy.write_text(POLICY)
    extra = dict(w.settings)
    if w.hosts:
        extra["ANSIBLE_INVENTORY"] = str(prepare_hosts(w.hosts, w.tmp / "standins"))
        for hook in w.after_hosts:
            hook(w.tmp / "standins")
    if w.log_lines:
        log = w.tmp / "syslog"
        log.write_text("\n".join(w.log_lines) + "\n")
        extra["LOG_FILES"] = str(log)
    return load_settings(AIOPS_DATA_DIR=w.tmp / "var", ENABLE_MEMORY=False, VERIFY_SETTLE_SECONDS=0,
                         POLICY_FILE=policy, HOST_RECLAIM_MIN_MB=8, LLM_MODE="rules", **extra)


def _factory(settings: Any, w: World) -> Callable[[dict[str, Any]], Any]:
    """Live toolboxes, as `aiops serve` builds them (every toolset connected from the settings), in rule
    mode and without memory."""
    from agents.toolbox import Toolbox
    from core.llm import LLMChain

    def factory(spec: dict[str, Any]) -> Any:
        executor = ActionExecutor(settings)
        box = Toolbox(metrics=toolset("metrics").connect(settings), logs=toolset("logs").connect(settings),
                      llm=LLMChain([]), settings=settings, executor=executor, source_spec=spec,
                      clients={k: v for k, v in executor.clients.items() if v is not None})
        if w.mounts:  # node_exporter's filesystem series; the clock pinned to the alert, as in a replay
            from tests.sim.node_exporter import NodeExporterSim

            box.metrics = NodeExporterSim(w.mounts, w.alert_time)
            box.now, box.recovery_after = w.alert_time, timedelta(minutes=10)
        return box

    return factory


async def _fire(scenario: Scenario, w: World) -> tuple[Any, Any, list[Any]]:
    """Run every step; approve the right fix when a human is asked for it. (last outcome, after approval)."""
    from service.runner import IncidentRunner

    outcome = decided = None
    plans: list[Any] = []
    for i, step in enumerate(scenario.steps):
        hook = step(w)
        w.alert_time = datetime.now(UTC)
        settings = _settings(w)
        async with IncidentRunner(settings, _factory(settings, w)) as runner:
            outcome = await runner.analyze(hook)
            decided = None
            plans = [outcome.report.plan, *(a.plan for a in outcome.report.attempts)]
            plan = outcome.report.plan
            if (outcome.pending is not None and plan is not None and outcome.plan_id
                    and [a.name for a in plan.actions] == [scenario.expect.fix]):
                decided = await runner.decide(outcome.plan_id, approver="eval-operator", decision="approve")
            if i < len(scenario.steps) - 1 and outcome.status.value in ("awaiting_approval", "escalated"):
                resolved = hook.model_copy(deep=True)
                resolved.status = "resolved"
                for a in resolved.alerts:
                    a.status = "resolved"
                await runner.analyze(resolved)
    return outcome, decided, plans


def score(scenario: Scenario, outcome: Any, decided: Any, plans: list[Any]) -> dict[str, Any]:
    r = outcome.report
    final = decided.report if decided is not None else r
    exp = scenario.expect
    proposed = [a.name for p in plans if p is not None for a in p.actions if a.name != "escalate_to_oncall"]
    approvals = [x.approval for x in (r, *r.attempts) if x.approval is not None]
    automatic = any(a.channel == "policy" for a in approvals)
    ran_ok = [e.action for x in (final, *final.attempts) for e in x.executions if e.status == "ok"]
    wrong = [a for a in proposed if a != exp.fix and a not in exp.may_propose]
    if automatic and not exp.automatic:
        wrong += [f"automatic {a}" for a in ran_ok] or ["automatic approval"]
    heal = (outcome.pending or {}).get("self_healing") or (r.self_healing.model_dump() if r.self_healing else {})
    return {
        "scenario": scenario.name, "system": scenario.system, "problem": scenario.problem,
        "expected": exp.fix or "no fix (near-miss)", "proposed": proposed,
        "right_fix_proposed": exp.fix in proposed if exp.fix else not [a for a in proposed if a not in exp.may_propose],
        "automatic": automatic, "automatic_expected": exp.automatic,
        "executed": ran_ok,
        "verified": bool(final.verification is not None and final.verification.recovered is True),
        "verification": final.verification.note if final.verification is not None else "",
        "guard": heal.get("rule") if heal else None, "guard_expected": exp.rule or None,
        "wrong_actions": wrong, "status": final.status.value,
        "fit": r.plan.fit if r.plan else [], "rationale": (r.plan.rationale if r.plan else "")[:300],
    }


REPO = Path(__file__).resolve().parents[2]


def _simulators() -> None:
    """The simulators live in the source checkout's tests/sim/ (they are not shipped in the package)."""
    try:
        import tests.sim  # noqa: F401
    except ModuleNotFoundError:
        if not (REPO / "tests" / "sim").is_dir():
            raise RuntimeError("aiops eval fixes needs a source checkout: its simulators live in tests/sim/") from None
        sys.path.insert(0, str(REPO))


def run(only: list[str] | None = None) -> dict[str, Any]:
    _simulators()
    rows = []
    started = time.perf_counter()
    for sc in SCENARIOS:
        if only and sc.name not in only:
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"aiops-eval-{sc.name}-") as tmp, _world(sc, Path(tmp)) as w:
            outcome, decided, plans = asyncio.run(_fire(sc, w))
        rows.append({**score(sc, outcome, decided, plans), "seconds": round(time.perf_counter() - t0, 1)})
    fixes = [r for r in rows if r["expected"] != "no fix (near-miss)"]
    return {
        "suite": SUITE, "mode": "rules", "scenarios": len(rows),
        "right_fix_proposed": sum(r["right_fix_proposed"] for r in fixes), "fix_scenarios": len(fixes),
        "near_misses_untouched": sum(r["right_fix_proposed"] for r in rows if r not in fixes),
        "near_misses": len(rows) - len(fixes),
        "automatic": sum(r["automatic"] for r in rows),
        "automatic_expected": sum(r["automatic_expected"] for r in rows),
        "verified": sum(r["verified"] for r in rows),
        "wrong_actions": sum(len(r["wrong_actions"]) for r in rows),
        "seconds": round(time.perf_counter() - started, 1), "per_case": rows,
    }


def summary_table(report: dict[str, Any]) -> str:
    lines = [f"fixes: {report['scenarios']} scenarios live (PVE and RouterOS simulators, Ansible stand-in hosts), "
             f"rule mode, {report['seconds']} s", "",
             f"{'scenario':36} {'expected fix':28} {'proposed':>10} {'automatic':>20} {'verified':>8} {'wrong':>5}"]
    for r in report["per_case"]:
        auto = ("yes" if r["automatic"] else "no") + ("" if r["automatic"] == r["automatic_expected"] else "!")
        if r["guard_expected"]:
            auto = f"{auto} ({r['guard']})"
        if r["expected"] == "no fix (near-miss)":
            proposed = ("to a human" if r["proposed"] else "nothing") if r["right_fix_proposed"] else "WRONG"
        else:
            proposed = "yes" if r["right_fix_proposed"] else "NO"
        lines.append(f"{r['scenario'][:36]:36} {r['expected'][:28]:28} {proposed:>10} {auto:>20} "
                     f"{'yes' if r['verified'] else '-':>8} {len(r['wrong_actions']):>5}")
    lines += ["", f"right fix proposed {report['right_fix_proposed']}/{report['fix_scenarios']}, near-misses left "
              f"alone {report['near_misses_untouched']}/{report['near_misses']}, automatic {report['automatic']} "
              f"(expected {report['automatic_expected']}), verified {report['verified']}, "
              f"wrong actions {report['wrong_actions']}"]
    return "\n".join(lines)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aiops eval fixes", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="scenario names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)

    unknown = set(args.only or []) - {s.name for s in SCENARIOS}
    try:
        if unknown:
            raise RuntimeError(f"unknown scenarios {sorted(unknown)} (see --help)")
        report = run(args.only)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return finish(summary_table(report), report, args.out)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(cli(sys.argv[1:]))
