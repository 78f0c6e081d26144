"""The incident lifecycle people drive: acknowledge, assign, comment, snooze, close.

One state machine for every interface (HTTP, CLI, Telegram, the console): each operation checks who
asks (`agents.approval.authorised`, the approval gate: APPROVERS, the Telegram approvers), checks the
transition against the incident's current row, and applies it as a compare-and-set on the row's
`version` (store/registry.py `IncidentRegistry.change`), writing its line of the audit trail in the
same transaction. Two people changing one incident at once: the loser re-reads and re-checks, so no
update is lost and none is applied to a state it was not checked against.

    any open status --ack--> acknowledged (once)          --assign(to)--> assignee (any number of times)
    any status --comment--> (a note in the trail)           --snooze(until)--> notifications held until then
    not running, no decision in flight --close(reason)--> closed
        a plan still pending is withdrawn (decision_state `withdrawn`: no approval can claim it, ever);
        the correlation index stops joining alerts to it (a new firing opens a new incident);
        it is remembered (incident memory) with the reason.

Closing is refused while the incident is being analysed or a decision is being carried out (an action
may be running): close it once that finished.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from agents.approval import authorised
from agents.correlation import Correlator
from agents.recall import remember_report
from agents.toolbox import Toolbox
from core.events import event
from core.models import Comment, IncidentReport, OnCall, utcnow
from core.settings import Settings
from graphs.state import typed
from service.refusals import BadChange, DecisionRefused, NotAllowedNow, NotAuthorised, UnknownIncident
from store.registry import DecisionRecord, IncidentRegistry, IncidentRow

log = logging.getLogger(__name__)

OPERATIONS = ("ack", "assign", "comment", "snooze", "close")
MAX_COMMENT = 2000
MAX_REASON = 500
MAX_SNOOZE = timedelta(days=7)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}$")
Check = Callable[[IncidentRow], tuple[dict[str, object], str]]  # the row -> (columns to set, audit line)
_ATTEMPTS = 8  # compare-and-set retries against concurrent changes before refusing (NotAllowedNow)


class Runner(Protocol):
    """What the lifecycle needs of service.runner.IncidentRunner (which owns it)."""

    settings: Settings
    registry: IncidentRegistry
    correlator: Correlator
    graph: Any

    async def report(self, incident_id: str) -> IncidentReport | None: ...

    async def announce(self, incident_id: str) -> None: ...

    def _toolbox(self, source: dict[str, Any], incident_id: str) -> Toolbox: ...


class Lifecycle:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.registry = runner.registry
        self.settings = runner.settings
        # Changes to one incident from this process take turns (each still a compare-and-set, which is
        # what orders them against other processes): a dozen people at once never exhaust the retries.
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    # ------------------------------------------------------------------------------ reads --
    @staticmethod
    def on_call(row: IncidentRow) -> OnCall:
        return OnCall(acknowledged_by=row.ack_by, acknowledged_at=row.ack_at, assignee=row.assignee,
                      snoozed_until=row.snoozed_until, closed_by=row.closed_by, closed_at=row.closed_at,
                      close_reason=row.close_reason)

    def comments(self, incident_id: str) -> list[Comment]:
        return [Comment(at=d.at, by=d.approver, channel=d.channel, text=d.reason)
                for d in self.registry.decisions(incident_id) if d.decision == "comment" and d.outcome == "done"]

    def snoozed(self, incident_id: str, now: datetime | None = None) -> bool:
        """Are this incident's notifications held (snoozed until a later time)?"""
        row = self.registry.get(incident_id)
        return bool(row and row.snoozed_until and (now or utcnow()) < row.snoozed_until)

    # ------------------------------------------------------------------------------ operations --
    async def acknowledge(self, incident_id: str, *, by: str, channel: str) -> IncidentRow:
        row = await self._gate(incident_id, "ack", by, channel)

        def check(row: IncidentRow) -> tuple[dict[str, object], str]:
            self._open(row, "acknowledged")
            if row.ack_by:
                raise NotAllowedNow(f"incident {incident_id} was already acknowledged by {row.ack_by} at "
                                    f"{row.ack_at:%Y-%m-%d %H:%M:%S}Z")
            return {"ack_by": by, "ack_at": utcnow()}, "acknowledged"

        row = await self._apply(row, "ack", by, channel, check)
        await self.runner.announce(incident_id)
        return row

    async def assign(self, incident_id: str, to: str, *, by: str, channel: str) -> IncidentRow:
        row = await self._gate(incident_id, "assign", by, channel)
        to = to.strip()
        if not NAME.fullmatch(to):
            raise self._refused(BadChange(f"{to[:40]!r} is not a name (letters, digits, _ . @ : -; 1-100)"),
                                incident_id, "assign", by, channel)

        def check(row: IncidentRow) -> tuple[dict[str, object], str]:
            self._open(row, "assigned")
            if row.assignee == to:
                raise NotAllowedNow(f"incident {incident_id} is already assigned to {to}")
            return {"assignee": to}, f"assigned to {to}" + (f" (was {row.assignee})" if row.assignee else "")

        row = await self._apply(row, "assign", by, channel, check)
        await self.runner.announce(incident_id)
        return row

    async def comment(self, incident_id: str, text: str, *, by: str, channel: str) -> IncidentRow:
        row = await self._gate(incident_id, "comment", by, channel)
        text = text.strip()
        if not text or len(text) > MAX_COMMENT:
            raise self._refused(BadChange(f"a comment has 1 to {MAX_COMMENT} characters"), incident_id, "comment",
                                by, channel)
        row = await self._apply(row, "comment", by, channel, lambda row: ({}, text))
        await self.runner.announce(incident_id)
        return row

    async def snooze(self, incident_id: str, until: datetime, *, by: str, channel: str) -> IncidentRow:
        row = await self._gate(incident_id, "snooze", by, channel)
        now = utcnow()
        if until.tzinfo is None:
            raise self._refused(BadChange("give the time with its zone, e.g. 2026-01-01T12:00:00Z"), incident_id,
                                "snooze", by, channel)
        if not now < until <= now + MAX_SNOOZE:
            raise self._refused(BadChange(f"snooze until a time in the next {MAX_SNOOZE.days} days"), incident_id,
                                "snooze", by, channel)

        def check(row: IncidentRow) -> tuple[dict[str, object], str]:
            self._open(row, "snoozed")
            return {"snoozed_until": until}, f"notifications snoozed until {until:%Y-%m-%d %H:%M:%S}Z"

        return await self._apply(row, "snooze", by, channel, check)

    async def close(self, incident_id: str, reason: str, *, by: str, channel: str) -> IncidentRow:
        row = await self._gate(incident_id, "close", by, channel)
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise self._refused(BadChange(f"closing needs a reason of 1 to {MAX_REASON} characters"), incident_id,
                                "close", by, channel)

        def check(row: IncidentRow) -> tuple[dict[str, object], str]:
            self._open(row, "closed")
            if row.status in ("running", "executing") or row.decision_state in ("approved", "rejected", "executing"):
                raise NotAllowedNow(f"incident {incident_id} is {row.status} (decision {row.decision_state or '-'}): "
                                    "an analysis or an action is in progress; close it once it finished")
            withdrawn = f"; plan {row.plan_id} withdrawn" if row.decision_state == "pending" else ""
            return ({"status": "closed", "closed_by": by, "closed_at": utcnow(), "close_reason": reason},
                    f"{reason}{withdrawn}")

        # The row's own compare-and-set conditions repeat the check, so an approval that claims the plan
        # between our read and our write makes this update miss (and the retry refuse), never both win.
        row = await self._apply(row, "close", by, channel, check, withdraw=True,
                                where="status NOT IN ('closed', 'running', 'executing') AND (decision_state IS NULL "
                                      "OR decision_state NOT IN ('approved', 'rejected', 'executing'))")
        self.runner.correlator.close_incident(incident_id)  # no more alerts join it: a new firing is new
        await self.runner.announce(incident_id)  # every channel shows it closed (PagerDuty resolves it)
        await self._remember(row, f"closed by {by}: {reason}")
        return row

    # ------------------------------------------------------------------------------ machinery --
    @staticmethod
    def _open(row: IncidentRow, verb: str) -> None:
        if row.status == "closed":
            raise NotAllowedNow(f"incident {row.incident_id} is closed (by {row.closed_by}: {row.close_reason}); "
                                f"it cannot be {verb}")

    def _refused(self, exc: DecisionRefused, incident_id: str, op: str, by: str, channel: str,
                 row: IncidentRow | None = None) -> DecisionRefused:
        if row is not None or not isinstance(exc, LookupError):  # an unknown incident has no trail
            self.registry.record(DecisionRecord(at=utcnow(), incident_id=incident_id,
                                                plan_id=(row.plan_id if row else None) or "-", approver=by,
                                                channel=channel, decision=op, outcome="refused", reason=str(exc)))
        event("incident.change_refused", f"incident {incident_id}: {op} by {by} via {channel} refused: {exc}",
              incident_id=incident_id, operation=op, by=by, channel=channel, refusal=exc.refusal, reason=str(exc))
        return exc

    async def _gate(self, incident_id: str, op: str, by: str, channel: str) -> IncidentRow:
        """Who asks comes first (before what they ask is looked at): the approval gate, APPROVERS."""
        row = await asyncio.to_thread(self.registry.get, incident_id)
        if row is None:
            raise UnknownIncident(f"unknown incident id {incident_id!r}")
        if not authorised(by, channel, self.settings):
            raise self._refused(NotAuthorised(f"{by!r} is not an authorised approver for {channel}: only they "
                                              "may change incidents"), incident_id, op, by, channel, row)
        return row

    async def _apply(self, row: IncidentRow, op: str, by: str, channel: str, check: Check, *,
                     withdraw: bool = False, where: str = "") -> IncidentRow:
        incident_id = row.incident_id
        lock, waiting = self._turns.get(incident_id, (asyncio.Lock(), 0))
        self._turns[incident_id] = (lock, waiting + 1)
        try:
            async with lock:
                return await self._apply_now(row, op, by, channel, check, withdraw=withdraw, where=where)
        finally:
            lock, waiting = self._turns[incident_id]
            if waiting <= 1:
                del self._turns[incident_id]
            else:
                self._turns[incident_id] = (lock, waiting - 1)

    async def _apply_now(self, row: IncidentRow, op: str, by: str, channel: str, check: Check, *,
                         withdraw: bool, where: str) -> IncidentRow:
        incident_id = row.incident_id
        for _ in range(_ATTEMPTS):
            try:
                sets, detail = check(row)
            except DecisionRefused as exc:
                raise self._refused(exc, incident_id, op, by, channel, row) from None
            rec = DecisionRecord(at=utcnow(), incident_id=incident_id, plan_id=row.plan_id or "-", approver=by,
                                 channel=channel, decision=op, outcome="done", reason=detail)
            if await asyncio.to_thread(self.registry.change, incident_id, row.version, sets, rec,
                                       where=where, withdraw=withdraw):
                self._event(op, row, sets, detail, by, channel)
                fresh = await asyncio.to_thread(self.registry.get, incident_id)
                assert fresh is not None
                return fresh
            again: IncidentRow | None = await asyncio.to_thread(self.registry.get, incident_id)
            row = again or row  # changed meanwhile: check again against what it is now
        raise self._refused(NotAllowedNow(f"incident {incident_id} kept changing under this {op}; try again"),
                            incident_id, op, by, channel, row)

    @staticmethod
    def _event(op: str, row: IncidentRow, sets: dict[str, object], detail: str, by: str, channel: str) -> None:
        """The change's event line (core.events): what, on which incident, who, through which channel."""
        iid = row.incident_id
        fields: dict[str, Any] = {"incident_id": iid, "by": by, "channel": channel, "plan_id": row.plan_id}
        if op == "ack":
            event("incident.acknowledged", f"incident {iid} acknowledged by {by} via {channel}", **fields)
        elif op == "assign":
            event("incident.assigned", f"incident {iid} assigned to {sets['assignee']} by {by} via {channel}",
                  **fields, assignee=str(sets["assignee"]), previous=row.assignee)
        elif op == "comment":
            event("incident.commented", f"incident {iid}: comment by {by} via {channel}", **fields,
                  length=len(detail))
        elif op == "snooze":
            until = sets["snoozed_until"]
            assert isinstance(until, datetime)
            event("incident.snoozed", f"incident {iid}: notifications snoozed by {by} via {channel} until "
                  f"{until:%Y-%m-%d %H:%M:%S}Z", **fields, until=until.isoformat())
        else:
            withdrawn = row.plan_id if row.decision_state == "pending" else None
            event("incident.closed", f"incident {iid} closed by {by} via {channel}: {sets['close_reason']}",
                  **fields, status="closed", reason=str(sets["close_reason"]), plan_withdrawn=withdrawn)

    async def _remember(self, row: IncidentRow, resolution: str) -> None:
        """The closed incident goes into incident memory with how it was closed (when memory is on)."""
        report = await self.runner.report(row.incident_id)
        values = typed((await self.runner.graph.aget_state({"configurable": {"thread_id": row.incident_id}})).values)
        if report is None or not values.get("incident"):
            return
        try:
            toolbox = self.runner._toolbox(row.source, row.incident_id)
            await asyncio.to_thread(remember_report, report, values["incident"], toolbox,
                                    resolution)
        except Exception as exc:  # memory is a help, not a gate: the incident is closed either way
            log.warning("incident %s closed, but could not be remembered: %s", row.incident_id, exc)
