"""The `aiops` command line.

    aiops demo                               replay the bundled incidents through the whole graph
    aiops analyze --alert FILE [--replay R]  run an Alertmanager webhook until the approval gate or the end
    aiops approve PLAN_ID --by NAME          resume a paused plan (any process, any time before expiry)
    aiops reject PLAN_ID --by NAME
    aiops approve PLAN_ID --by NAME --after-interruption   decide again after a crash mid-execution
    aiops ack ID --by NAME                   acknowledge an incident (also: assign ID USER, comment ID TEXT,
                                             snooze ID UNTIL, close ID --reason WHY; all --by NAME)
    aiops incidents                          list incidents
    aiops show INCIDENT_ID                   print one incident's report
    aiops bot                                the Telegram bot (long polling) with notification delivery
    aiops notify flush|dead-letters|stats    the notification outbox
    aiops serve [--no-worker] [--intake-processes N]   the HTTP service (API + embedded workers)
    aiops worker [--concurrency N]           workers alone, consuming the alert queue
    aiops eval <suite> ...                   offline evals (nezha, loghub, runbooks, alerts, fixes)
    aiops memory <command> ...               incident/runbook memory (ingest, stats)
    aiops watch [--once]                     anomaly watcher over WATCH_SERVICES (raises AiopsAnomalyDetected)
    aiops self-healing [status|on|off]       the run-time kill switch of automatic actions

Bad input exits non-zero with one line on stderr, never a traceback (set DEBUG=true for one).
While `aiops serve` owns the data dir, analyze/approve/reject/incidents/show go through its API
(see service/discovery.py): the embedded stores are opened by one process only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.correlation import TopologyError
from agents.policy import PolicyError
from core.events import configure_logging
from core.models import AlertmanagerWebhook, IncidentReport
from core.payload import PayloadError, parse_webhook
from core.settings import Settings, SettingsError, get_settings
from interfaces.api.exposure import InsecureBind
from interfaces.render import render_decisions, render_report
from service.discovery import ServiceRunning, find_service
from service.queries import IncidentQueries
from service.refusals import DecisionRefused
from store.errors import StoreError, corrupted, is_corruption

if TYPE_CHECKING:  # imported where a command needs it: `aiops --help` does not load the graph
    from service.runner import IncidentRunner


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _load_webhook(path: str, settings: Settings) -> Any:
    """The webhook in FILE, or CLIError naming the file and the problem (nothing is written then)."""

    try:
        size = Path(path).stat().st_size
        if size > settings.MAX_PAYLOAD_BYTES:
            raise CLIError(f"{path} is {size:,} bytes, more than MAX_PAYLOAD_BYTES ({settings.MAX_PAYLOAD_BYTES:,})")
        with Path(path).open("rb") as fh:
            raw = fh.read(settings.MAX_PAYLOAD_BYTES + 1)  # never more than the limit, even if it grew
    except OSError as exc:
        raise CLIError(f"cannot read alert file {path}: {exc.strerror}") from None
    try:
        return parse_webhook(raw, settings, source=path)
    except PayloadError as exc:
        raise CLIError(str(exc)) from None


def _runner(settings: Settings) -> IncidentRunner:
    from service.runner import IncidentRunner
    from service.toolbox_factory import make_toolbox_factory

    return IncidentRunner(settings, make_toolbox_factory(settings))


class _Notified:
    """The runner with the notification outbox attached: events are queued durably during the command,
    then delivered for up to NOTIFY_TIMEOUT; what is left waits for `aiops bot`/`serve` or `notify flush`."""

    def __init__(self, settings: Settings) -> None:
        from interfaces.notify.outbox import Outbox

        self.settings = settings
        self.runner = _runner(settings)
        self.outbox = Outbox.from_settings(settings)

    async def __aenter__(self) -> IncidentRunner:
        runner = await self.runner.__aenter__()
        self.outbox.attach(runner)
        return runner

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.outbox.channels:
                await self.outbox.drain(timeout=self.settings.NOTIFY_TIMEOUT)
        finally:
            await self.outbox.close()
            await self.runner.__aexit__(*exc)


def _service(settings: Settings) -> Any:
    """A client of the service that owns this data dir, or None (then the CLI works on the stores)."""

    info = find_service(settings)
    if info is None:
        return None
    from interfaces.service_client import ServiceClient

    return ServiceClient(info)


def _remote(call: Any) -> Any:
    from interfaces.service_client import ServiceError

    try:
        return call()
    except ServiceError as exc:
        raise CLIError(str(exc)) from None


def _emit_remote(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "report"}))
        return
    report = IncidentReport.model_validate(result["report"])
    print(render_report(report, pending={} if result["status"] == "awaiting_approval" else None))


def _emit(outcome: Any, as_json: bool, name: str | None = None, seconds: float | None = None,
          resumed: bool = False) -> None:
    if as_json:
        print(json.dumps({**outcome.summary(), "title": outcome.report.title}))
    else:
        print(render_report(outcome.report, pending=outcome.pending, name=name, seconds=seconds, resumed=resumed))


async def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    webhook = _load_webhook(args.alert, settings)
    source: dict[str, Any] = {"kind": "live"}
    if args.replay:
        from service.toolbox_factory import replay_spec

        if not Path(args.replay).exists():
            raise CLIError(f"recording {args.replay} does not exist")
        source = replay_spec(args.replay, settings)
    client = _service(settings)
    if client is not None:
        result = _remote(lambda: client.analyze(webhook.model_dump(mode="json", by_alias=True), source))
        if "report" not in result:
            raise CLIError(f"incident {result['incident_id']} is still {result['status']} on the service; "
                           f"see: aiops show {result['incident_id']}")
        _emit_remote(result, args.json)
        return 0
    async with _Notified(settings) as runner:
        outcome = await runner.analyze(webhook, source)
    _emit(outcome, args.json)
    return 0


async def cmd_decide(args: argparse.Namespace, settings: Settings, decision: str) -> int:

    client = _service(settings)
    if client is not None:
        result = _remote(lambda: client.decide(args.plan_id, decision, approver=args.by, plan_hash=args.hash,
                                               comment=args.comment or ""))
        _emit_remote(result, args.json)
        return 0
    async with _Notified(settings) as runner:
        try:
            outcome = await runner.decide(args.plan_id, approver=args.by, decision=decision, channel="cli",
                                          plan_hash=args.hash, comment=args.comment or "",
                                          after_interruption=args.after_interruption)
        except DecisionRefused as exc:  # the one mapping of refusals: exit 2, one line, nothing consumed
            raise CLIError(str(exc).strip("'\"")) from None
    _emit(outcome, args.json)
    return 0


_ENDPOINT = {"ack": "ack", "assign": "assign", "comment": "comments", "snooze": "snooze", "close": "close"}


async def cmd_change(args: argparse.Namespace, settings: Settings) -> int:
    """The on-call operations: the service's endpoint while it runs, else the lifecycle on the stores."""
    from datetime import datetime


    op = args.command
    until = None
    if op == "snooze":
        try:
            until = datetime.fromisoformat(args.until.replace("Z", "+00:00"))
        except ValueError:
            raise CLIError(f"{args.until!r} is not an ISO 8601 time (e.g. 2026-01-01T12:00:00Z)") from None
    body: dict[str, Any] | None = {"ack": None, "assign": {"to": getattr(args, "user", "")},
                                   "comment": {"text": getattr(args, "text", "")},
                                   "snooze": {"until": getattr(args, "until", "")},
                                   "close": {"reason": getattr(args, "reason", "")}}[op]
    client = _service(settings)
    if client is not None:
        result = _remote(lambda: client.change(args.incident_id, _ENDPOINT[op], approver=args.by, body=body))
    else:
        async with _runner(settings) as runner:
            try:
                row = await runner.change(args.incident_id, op, by=args.by, channel="cli",
                                          to=getattr(args, "user", ""), until=until,
                                          text=args.text if op == "comment" else getattr(args, "reason", ""))
            except DecisionRefused as exc:  # the CLI's mapping of refusals: exit 2, one line
                raise CLIError(str(exc).strip("'\"")) from None
            result = {"incident_id": row.incident_id, "operation": op, "by": args.by, "status": row.status,
                      "plan_id": row.plan_id, "decision_state": row.decision_state,
                      "on_call": runner.on_call(row).model_dump(mode="json")}
    if args.json:
        print(json.dumps(result))
        return 0
    done = {"ack": "acknowledged", "assign": f"assigned to {getattr(args, 'user', '')}", "comment": "commented",
            "snooze": f"snoozed until {getattr(args, 'until', '')}", "close": "closed"}[op]
    withdrawn = " (its pending plan is withdrawn)" if result.get("decision_state") == "withdrawn" and op == "close" else ""
    print(f"{result['incident_id']}: {done} by {args.by}{withdrawn}; status {result['status']}")
    return 0


async def cmd_incidents(args: argparse.Namespace, settings: Settings) -> int:
    from store.registry import IncidentRow

    client = _service(settings)
    if client is not None:
        listed = _remote(lambda: client.incidents(args.status, args.limit))
        if args.json:
            print(json.dumps({"incidents": listed}))
            return 0
        rows = [IncidentRow.model_validate({**r, "source": {}}) for r in listed]
    else:
        with IncidentQueries.over(settings) as queries:  # the registry alone: no graph to load for a list
            rows = queries.incidents(limit=args.limit, status=args.status)
    if args.json:
        print(json.dumps({"incidents": [r.model_dump(mode="json", exclude={"source"}) for r in rows]}))
        return 0
    if not rows:
        print("no incidents")
        return 0
    print(f"{'INCIDENT':<17} {'STATUS':<18} {'MODE':<8} {'PLAN':<18} {'DECISION':<12} {'UPDATED':<17} TITLE")
    for r in rows:
        print(f"{r.incident_id:<17} {r.status:<18} {r.mode[:8]:<8} {(r.plan_id or '-'):<18} "
              f"{(r.decision_state or '-'):<12} {r.updated_at:%Y-%m-%d %H:%M} {r.title[:70]}")
    return 0


async def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from store.registry import DecisionRecord

    client = _service(settings)
    if client is not None:  # the same report and decision trail as the stores give (GET /api/v1/incidents/{id})
        body = _remote(lambda: client.report(args.incident_id))
        decisions = [DecisionRecord.model_validate(d) for d in body.pop("decisions", [])]
        report = IncidentReport.model_validate(body)
    else:
        async with _runner(settings) as runner:
            found = await runner.report(args.incident_id)
            decisions = runner.decisions(args.incident_id) if found is not None else []
        if found is None:
            raise CLIError(f"unknown incident id {args.incident_id!r}")
        report = found
    if args.json:
        print(json.dumps({**report.model_dump(mode="json"),
                          "decisions": [d.model_dump(mode="json") for d in decisions]}, indent=1))
    else:
        # awaiting approval: the expiry and the approve/reject commands, as when the run paused
        print(render_report(report, pending={} if report.status.value == "awaiting_approval" else None))
        if decisions:
            print(render_decisions(decisions))
    return 0


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Replay the bundled recordings; a demo approver stands in for the human at the gate."""
    import fcntl

    from service.toolbox_factory import replay_spec
    from tools.replay.recording import bundled_incidents, load_recorded

    demo_dir = settings.AIOPS_DATA_DIR / "demo"
    settings.AIOPS_DATA_DIR.mkdir(parents=True, exist_ok=True)
    lock = (settings.AIOPS_DATA_DIR / "demo.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CLIError(f"another aiops demo is running on {demo_dir}") from None
    if demo_dir.exists():
        shutil.rmtree(demo_dir)  # every demo run starts from a clean, embedded state
    demo = settings.model_copy(update={"AIOPS_DATA_DIR": demo_dir, "DATABASE_URL": None, "CHECKPOINT_DB": None,
                                       "APPROVERS": None, "MILVUS_URI": None})
    paths = [p for p in bundled_incidents() if not args.only or p.stem in args.only]
    if not paths:
        raise CLIError(f"no bundled recording named {', '.join(args.only)}")
    if demo.ENABLE_MEMORY and any(p.stem == "crashloop" for p in paths):
        # The same incident again: memory recognises it, cites it, and proposes the fix that worked.
        paths.append(next(p for p in paths if p.stem == "crashloop"))
    summaries = []
    started_all = time.perf_counter()
    async with _runner(demo) as runner:
        seen: set[str] = set()
        for path in paths:
            rec = load_recorded(path)
            if rec.name in seen:
                rec = rec.model_copy(update={"name": f"{rec.name} (again, the next week)"})
            seen.add(rec.name)
            started = time.perf_counter()
            outcome = await runner.analyze(rec.webhook, replay_spec(path, demo))
            resumed = outcome.pending is not None
            if outcome.pending is not None:
                if not args.json:
                    _emit(outcome, False, rec.name)
                if rec.name == "crashloop":  # Alertmanager re-sends while a plan waits: shown as a duplicate
                    dup = await runner.analyze(rec.webhook, replay_spec(path, demo))
                    if not args.json:
                        print(f"{'DUPLICATE':<11}Alertmanager re-sent {rec.webhook.alerts[0].name}: "
                              f"{dup.report.triage.reason} -> {dup.status.value}, no new work")
                    summaries.append({**dup.summary(), "name": rec.name + " (re-sent)"})
                decision = "reject" if outcome.report.plan and outcome.report.plan.risk.value == "high" else "approve"
                if not args.json:
                    print(f"{'':<11}demo approver (stand-in for a human) {decision}s "
                          f"{'high-risk plans' if decision == 'reject' else 'this plan'}:")
                outcome = await runner.decide(outcome.plan_id or "", approver="demo-operator", decision=decision,
                                              channel="demo", comment="aiops demo stand-in approver")
            seconds = time.perf_counter() - started
            summaries.append({**outcome.summary(), "name": rec.name, "seconds": round(seconds, 2)})
            if not args.json:
                _emit(outcome, False, rec.name, seconds, resumed=resumed)
                print()
    total = time.perf_counter() - started_all
    if args.json:
        print(json.dumps({"incidents": summaries, "seconds": round(total, 2)}))
    else:
        print(f"demo: {len(paths)} recorded incidents in {total:.1f} s; state in {demo_dir}/ "
              f"(try: AIOPS_DATA_DIR={demo_dir} aiops incidents)")
    return 0


async def cmd_bot(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.TELEGRAM_TOKEN:
        raise CLIError("TELEGRAM_TOKEN is not set: create a bot with @BotFather and put its token in TELEGRAM_TOKEN")

    running = find_service(settings)
    if running is not None:  # one process owns the data dir's stores; the service runs the bot itself
        raise CLIError(f"aiops serve owns {settings.AIOPS_DATA_DIR} (pid {running.pid}): it already runs the bot "
                       "when TELEGRAM_TOKEN is set; stop it or use another AIOPS_DATA_DIR")
    from interfaces.telegram.bot import BotSetupError

    try:
        await _run_bot(settings)
    except BotSetupError as exc:
        raise CLIError(str(exc)) from None
    return 0


async def _run_bot(settings: Settings) -> None:
    """The `aiops bot` process: runner + outbox + bot until SIGINT/SIGTERM."""
    from core.llm import build_llm_chain
    from interfaces.notify.outbox import Outbox
    from interfaces.telegram.bot import TelegramBot

    async with _runner(settings) as runner:
        outbox = Outbox.from_settings(settings)
        outbox.attach(runner)
        chat = None
        chain = build_llm_chain(settings)
        if chain.providers:
            from graphs.chat import ChatAgent
            from interfaces.telegram.ops import on_demand_webhook

            chat = ChatAgent(runner, chain, settings, on_demand_webhook)
        bot = TelegramBot(settings, runner, outbox=outbox, chat=chat)
        delivery = asyncio.create_task(outbox.run())
        try:
            await bot.run(handle_signals=True)
        finally:
            await outbox.stop()
            delivery.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
            await outbox.close()


async def cmd_notify(args: argparse.Namespace, settings: Settings) -> int:
    from interfaces.notify.outbox import Outbox

    outbox = Outbox.from_settings(settings)
    try:
        if not outbox.channels:
            raise CLIError("no notification channel is enabled (TELEGRAM_TOKEN+ADMIN_CHAT_ID, "
                           "ENABLE_EMAIL_NOTIFICATIONS, ENABLE_SLACK_NOTIFICATIONS, ENABLE_PAGERDUTY)")
        if args.action == "flush":
            done = await outbox.drain(timeout=args.timeout)
            stats = await outbox.stats()
            print(json.dumps({"drained": done, "delivered": len(outbox.delivered), "queues": stats}))
            return 0 if done else 1
        if args.action == "stats":
            print(json.dumps(await outbox.stats()))
            return 0
        dead = await outbox.dead_letters()
        print(json.dumps({"dead_letters": [{"queue": d.queue, "key": d.key, "deliveries": d.deliveries,
                                            "reason": d.reason, "failed_at": d.failed_at} for d in dead]}))
        return 0
    finally:
        await outbox.close()


async def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    """The anomaly watcher: scan the watched services and raise AiopsAnomalyDetected into the runner."""
    from service.watch import WatchNotConfigured, build_watcher

    if args.interval:
        settings = settings.model_copy(update={"WATCH_INTERVAL_SECONDS": args.interval})
    services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
    async with _runner(settings) as runner:
        async def sink(hook: AlertmanagerWebhook) -> None:
            outcome = await runner.analyze(hook)
            alert = hook.alerts[0]
            line = {"service": alert.labels["service"], "status": hook.status, "incident_id": outcome.incident_id,
                    "incident_status": outcome.status.value, "summary": alert.annotations.get("summary", "")}
            print(json.dumps(line) if args.json else
                  f"{line['status']:<9} {line['service']:<20} -> {line['incident_id']} ({line['incident_status']}): "
                  f"{line['summary']}", flush=True)

        try:
            watcher = build_watcher(settings, sink, services)
        except WatchNotConfigured as exc:
            raise CLIError(str(exc)) from None
        if args.once:
            sent = await watcher.scan_once()
            if not sent and not args.json:
                print(f"nothing raised for {', '.join(watcher.services)} (no anomaly, or its incident is still open)")
            return 0
        print(f"watching {', '.join(watcher.services)} every {settings.WATCH_INTERVAL_SECONDS} s (Ctrl-C stops)",
              flush=True)
        await watcher.run()
    return 0


async def cmd_self_healing(args: argparse.Namespace, settings: Settings) -> int:
    from agents.approval import authorised
    from service import autonomy

    if args.state in ("on", "off"):
        if not args.by:
            raise CLIError("--by NAME is required to switch self-healing on or off")
        if not authorised(args.by, "cli", settings):  # the same gate as a decision, and as the API's switch
            raise CLIError(f"{args.by!r} is not an authorised approver (APPROVERS)")
        status = autonomy.switch(settings, args.state == "on", args.by)
    else:
        status = autonomy.status(settings)
    if args.json:
        print(json.dumps(status))
    else:
        print(f"self-healing {'ON' if status['enabled'] else 'OFF'} (SELF_HEALING={str(status['env_enabled']).lower()}, "
              f"run-time switch {'on' if status['runtime_enabled'] else 'off'}"
              f"{' by ' + str(status['changed_by']) + ' at ' + str(status['changed_at']) if status['changed_by'] else ''}); "
              f"{status['policy']} policy, rules {', '.join(status['rules']) or 'none'}; limits {status['limits']}; "
              f"flap window {status['flap_window_seconds']} s")
    return 0


async def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from interfaces.api.app import serve
    from service.watch import WatchNotConfigured

    try:
        return await serve(settings, host=args.host, port=args.port or settings.API_PORT,
                           worker=not args.no_worker, concurrency=args.concurrency,
                           intake_processes=args.intake_processes)
    except (ServiceRunning, InsecureBind, WatchNotConfigured) as exc:
        raise CLIError(str(exc)) from None


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from service.worker import run_workers

    return await run_workers(settings, args.concurrency or settings.WORKER_CONCURRENCY)


def _memory_beside_service(argv: list[str]) -> None:
    """milvus-lite allows one process per file: while `aiops serve` holds it, `aiops memory` on the same
    file cannot open it. Say so in one line (CLIError) instead of the lock's tracebacks."""
    if any(a in ("-h", "--help") for a in argv):
        return
    from memory.incidents import is_lite_uri

    settings = get_settings()
    uri = settings.milvus_uri
    for i, arg in enumerate(argv):
        if arg == "--uri" and i + 1 < len(argv):
            uri = argv[i + 1]
        elif arg.startswith("--uri="):
            uri = arg.split("=", 1)[1]
    if not settings.ENABLE_MEMORY or not is_lite_uri(uri) or not is_lite_uri(settings.milvus_uri):
        return
    if Path(uri).expanduser().resolve() != Path(settings.milvus_uri).expanduser().resolve():
        return  # another file: not the service's
    info = find_service(settings)
    if info is not None:
        raise CLIError(f"aiops memory: the running aiops serve (pid {info.pid}, {info.url}) holds the milvus-lite "
                       f"file {uri}, which one process may open: stop the service first, or give both a Milvus "
                       "server (MILVUS_URI=http://...)")


# `aiops eval <suite>`: the offline eval suites, each module's `cli(argv)`. The one edge from the product
# to `evals` (tests/unit/test_layering.py reads this table): a suite's stack loads only when it runs.
EVAL_SUITES: dict[str, str] = {
    "nezha": "evals.suites.nezha",
    "loghub": "evals.suites.loghub",
    "runbooks": "evals.suites.runbooks",
    "alerts": "evals.suites.alerts",
    "fixes": "evals.suites.fixes",
}


def _eval(suite: str, argv: list[str]) -> int:
    if suite not in EVAL_SUITES:
        raise CLIError(f"evals.suites.{suite} is not available: No module named 'evals.suites.{suite}'")
    try:
        mod = importlib.import_module(EVAL_SUITES[suite])
    except ModuleNotFoundError as exc:
        raise CLIError(f"{EVAL_SUITES[suite]} is not available: {exc}") from None
    return int(mod.cli(argv))


def _memory(argv: list[str]) -> int:
    try:
        from memory import cli as memory_cli
    except ModuleNotFoundError as exc:
        raise CLIError(f"memory.cli is not available: {exc}") from None
    return int(memory_cli.cli(argv))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aiops", description="AIOps agent platform")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="replay the bundled recorded incidents through the full graph")
    d.add_argument("--only", nargs="*", help="recording names (default: all)")
    d.add_argument("--json", action="store_true")

    a = sub.add_parser("analyze", help="analyze an Alertmanager webhook JSON file")
    a.add_argument("--alert", required=True, help="Alertmanager v4 webhook payload (JSON file)")
    a.add_argument("--replay", help="recorded incident to use as telemetry (default: live backends)")
    a.add_argument("--json", action="store_true")

    for name in ("approve", "reject"):
        s = sub.add_parser(name, help=f"{name} a plan waiting at the approval gate")
        s.add_argument("plan_id")
        s.add_argument("--by", required=True, help="approver name")
        s.add_argument("--hash", help="the plan hash you reviewed (default: the hash shown when it paused)")
        s.add_argument("--comment")
        s.add_argument("--after-interruption", action="store_true",
                       help="decide again on a plan whose execution was interrupted (approve re-runs it)")
        s.add_argument("--json", action="store_true")

    for name, what in (("ack", "acknowledge an incident"), ("assign", "assign an incident to someone"),
                       ("comment", "leave a note on an incident"),
                       ("snooze", "hold an incident's notifications until a time"),
                       ("close", "close an incident with a reason (a waiting plan is withdrawn)")):
        c = sub.add_parser(name, help=what)
        c.add_argument("incident_id")
        if name == "assign":
            c.add_argument("user", help="who takes it")
        if name == "comment":
            c.add_argument("text")
        if name == "snooze":
            c.add_argument("until", help="ISO 8601 time with a zone, e.g. 2026-01-01T12:00:00Z")
        if name == "close":
            c.add_argument("--reason", required=True, help="why it is closed (remembered with it)")
        c.add_argument("--by", required=True, help="who does it (an approver: APPROVERS)")
        c.add_argument("--json", action="store_true")

    i = sub.add_parser("incidents", help="list incidents")
    i.add_argument("--status")
    i.add_argument("--limit", type=int, default=50)
    i.add_argument("--json", action="store_true")

    sh = sub.add_parser("show", help="print one incident's report")
    sh.add_argument("incident_id")
    sh.add_argument("--json", action="store_true")

    sub.add_parser("bot", help="run the Telegram bot (long polling; TELEGRAM_TOKEN, ADMIN_CHAT_ID)")
    n = sub.add_parser("notify", help="the notification outbox: deliver what is queued, list dead letters")
    n.add_argument("action", choices=["flush", "dead-letters", "stats"])
    n.add_argument("--timeout", type=float, default=30.0, help="flush: give up after this many seconds")
    wa = sub.add_parser("watch", help="anomaly watcher: raise AiopsAnomalyDetected for anomalous watched services")
    wa.add_argument("--services", help="comma-separated services (default: WATCH_SERVICES)")
    wa.add_argument("--interval", type=int, help="seconds between scans (default: WATCH_INTERVAL_SECONDS)")
    wa.add_argument("--once", action="store_true", help="one scan, then exit")
    wa.add_argument("--json", action="store_true")

    sh2 = sub.add_parser("self-healing", help="show or switch automatic actions (the run-time kill switch)")
    sh2.add_argument("state", nargs="?", choices=["status", "on", "off"], default="status")
    sh2.add_argument("--by", help="who switches it (an approver)")
    sh2.add_argument("--json", action="store_true")

    sv = sub.add_parser("serve", help="run the HTTP service (API + embedded workers)")
    sv.add_argument("--host", help="bind address (default: API_HOST)")
    sv.add_argument("--port", type=int, help="port (default: API_PORT)")
    sv.add_argument("--no-worker", action="store_true", help="API only: run `aiops worker` elsewhere")
    sv.add_argument("--concurrency", type=int, help="embedded worker runs in parallel (default: WORKER_CONCURRENCY)")
    sv.add_argument("--intake-processes", type=int, metavar="N",
                    help="more processes accepting webhooks on the same port (default: API_INTAKE_PROCESSES)")

    w = sub.add_parser("worker", help="run workers alone, consuming the alert queue")
    w.add_argument("--concurrency", type=int, help="runs in parallel (default: WORKER_CONCURRENCY)")

    sub.add_parser("eval", help="offline evals: aiops eval {nezha,loghub,runbooks,alerts,fixes} --help", add_help=False)
    sub.add_parser("memory", help="memory: aiops memory {ingest-runbooks,ingest-postmortems,stats} --help",
                   add_help=False)
    return p


def _run_uvloop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # a dependency, but not on every platform (Windows): asyncio's own loop, slower
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    settings: Settings | None = None
    try:
        if argv and argv[0] == "eval":
            if len(argv) < 2 or argv[1].startswith("-"):
                raise CLIError("usage: aiops eval {nezha,loghub,runbooks,alerts,fixes} [options]")
            return _eval(argv[1], argv[2:])
        if argv and argv[0] == "memory":
            _memory_beside_service(argv[1:])
            return _memory(argv[1:])
        args = build_parser().parse_args(argv)
        settings = get_settings()
        debug = settings.DEBUG
        if getattr(args, "concurrency", None) is not None and not 1 <= args.concurrency <= 64:
            raise CLIError("--concurrency must be between 1 and 64")
        # LOG_LEVEL unset: warnings, plus the event lines of the commands that run a service (they say what
        # they do: one line per alert, incident, plan, decision, action)
        long_running = args.command in ("serve", "worker", "bot", "watch")
        configure_logging("DEBUG" if debug else settings.LOG_LEVEL or "WARNING", settings.LOG_FORMAT,
                          events_level="INFO" if long_running and not debug and not settings.LOG_LEVEL else None)
        handler = {"demo": cmd_demo, "analyze": cmd_analyze, "incidents": cmd_incidents, "show": cmd_show,
                   "bot": cmd_bot, "notify": cmd_notify,
                   "watch": cmd_watch, "self-healing": cmd_self_healing,
                   "serve": cmd_serve, "worker": cmd_worker,
                   "approve": lambda a, s: cmd_decide(a, s, "approve"),
                   "reject": lambda a, s: cmd_decide(a, s, "reject"),
                   **dict.fromkeys(_ENDPOINT, cmd_change)}[args.command]
        if args.command == "serve":  # the service's loop on uvloop, as uvicorn picks for its intake processes:
            return _run_uvloop(handler(args, settings))  # per webhook request, about a third less CPU
        return asyncio.run(handler(args, settings))
    except (CLIError, SettingsError, StoreError, PolicyError, TopologyError) as exc:
        print(f"aiops: error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:  # the registry names its own file; a damaged page of the checkpoints
        if debug:
            raise
        if is_corruption(exc) and settings is not None and not settings.DATABASE_URL:
            print(f"aiops: error: {corrupted(settings.checkpoint_path, 'checkpoints', exc)}", file=sys.stderr)
            return 2
        print(f"aiops: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one line, unless DEBUG asks for the traceback
        if debug:
            raise
        print(f"aiops: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
