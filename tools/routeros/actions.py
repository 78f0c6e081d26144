"""RouterOS catalog actions (interface / route disable and enable), with RouterOS-style safety.

Before a change:
- names and ids are validated strictly (an interface name, a route id like `*1A`), the plan's target
  must be the configured router, and the item must exist (a dynamic route cannot be changed);
- a disable that would cut our own management path is refused: the interface holding the address
  our API connection reached, the interface and route the router uses to answer us, and the bridge
  / bridge ports they belong to (`Session.management_path`); if that path cannot be established the
  disable is refused too, since it cannot be proven safe.
A risky (high-risk) change first schedules its own revert on the router: a `/system/scheduler` job
that undoes it after `MIKROTIK_REVERT_SECONDS` and then removes itself. The job lives on the router,
so it fires even if the change cut us off; verification removes it only when the change verified.
After the change a new API session reads the item back (which also proves we can still reach it).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel

from core.models import Action
from tools.routeros.client import (
    RouterOSClient,
    RouterOSError,
    Session,
    check_interface,
    check_item_id,
)
from tools.toolset import Outcome


class Op(BaseModel):
    what: Literal["interface", "route"]
    disable: bool
    risky: bool  # schedules a revert


OPS: dict[str, Op] = {
    "routeros_interface_disable": Op(what="interface", disable=True, risky=True),
    "routeros_interface_enable": Op(what="interface", disable=False, risky=False),
    "routeros_route_disable": Op(what="route", disable=True, risky=True),
    "routeros_route_enable": Op(what="route", disable=False, risky=False),
}


class Refused(ValueError):
    pass


def _params(action: Action) -> tuple[Op, str]:
    op = OPS.get(action.name)
    if op is None:
        raise Refused(f"{action.name} is not a RouterOS catalog action")
    try:
        if op.what == "interface":
            return op, check_interface(str(action.parameters.get("interface", "")))
        return op, check_item_id(str(action.parameters.get("route", "")))
    except ValueError as exc:
        raise Refused(str(exc)) from None


def validate(action: Action) -> str | None:
    try:
        _params(action)
    except Refused as exc:
        return str(exc)
    return None


def describe(action: Action) -> str:
    op, item = _params(action)
    flag = "yes" if op.disable else "no"
    call = (f'/interface set [find name="{item}"] disabled={flag}' if op.what == "interface"
            else f"/ip route set {item} disabled={flag}")
    return call + (" (revert scheduled first)" if op.risky else "")


def _find(s: Session, op: Op, item: str) -> dict[str, Any]:
    if op.what == "interface":
        row = s.interface(item)
        if row is None:
            raise Refused(f"the router has no interface named {item}")
        return row
    row = next((r for r in s.routes() if str(r.get(".id", "")).upper() == item), None)
    if row is None:
        raise Refused(f"the router has no route {item}")
    if row.get("dynamic"):
        raise Refused(f"route {item} ({row.get('dst-address')}) is dynamic (connected or learned): it cannot be disabled")
    return row


def _check_target(s: Session, client: RouterOSClient, target: str) -> str:
    identity = s.identity()
    if target not in (identity, client.config.host):
        raise Refused(f"the plan targets {target!r} but the configured router is {identity!r} ({client.config.host})")
    return identity


def _check_management(s: Session, op: Op, item: str, row: dict[str, Any]) -> str:
    if not op.disable:
        return ""
    mp = s.management_path()
    if not mp.interfaces:
        raise Refused(f"cannot establish our management path to the router ({mp.note}); refusing a disable "
                      "that might cut it")
    if op.what == "interface" and item in mp.interfaces:
        raise Refused(f"{item} carries our management path (API connection {mp.client_address} -> "
                      f"{mp.router_address} uses {', '.join(mp.interfaces)}): disabling it would cut aiops off")
    if op.what == "route" and item in mp.route_ids:
        raise Refused(f"route {item} ({row.get('dst-address')} via {row.get('gateway')}) is how the router answers "
                      f"our API connection from {mp.client_address}: disabling it would cut aiops off")
    return f"management path ({', '.join(mp.interfaces)}) not affected"


def preflight(action: Action, client: RouterOSClient | None) -> str:
    try:
        op, item = _params(action)
        call = describe(action)
        if client is None:
            return call + " (RouterOS not configured: will be a dry run)"
        with client.session() as s:
            _check_target(s, client, action.target)
            row = _find(s, op, item)
            safe = _check_management(s, op, item, row)
        state = "disabled" if row.get("disabled") else "enabled"
        bits = [call, f"{item} is {state} now"]
        if safe:
            bits.append(safe)
        if op.risky:
            bits.append(f"a scheduler job re-enables it after {client.config.revert_seconds} s unless verified")
        return "; ".join(bits)
    except Refused as exc:
        return f"REFUSED: {exc}"
    except RouterOSError as exc:
        return f"cannot check: {exc}"


def revert_job_name(action: Action, item: str, plan_id: str) -> str:
    digest = hashlib.sha256(f"{action.name}|{item}|{plan_id}".encode()).hexdigest()[:10]
    return f"aiops-revert-{digest}"


def execute(action: Action, client: RouterOSClient | None, *, plan_id: str = "") -> Outcome:
    try:
        op, item = _params(action)
    except Refused as exc:
        return Outcome(status="failed", output=f"refused: {exc}")
    if client is None:
        return Outcome(status="dry_run", output="RouterOS not configured; would run " + describe(action))
    details: dict[str, Any] = {"what": op.what, "item": item, "disable": op.disable}
    try:
        with client.session() as s:
            identity = _check_target(s, client, action.target)
            row = _find(s, op, item)
            item_id = check_item_id(str(row[".id"]))
            details.update(router=identity, item_id=item_id)
            label = item if op.what == "interface" else f"route {item} {row.get('dst-address')} via {row.get('gateway')}"
            if bool(row.get("disabled")) == op.disable:
                return Outcome(status="skipped", details=details,
                               output=f"{label} is already {'disabled' if op.disable else 'enabled'}; nothing changed")
            safe = _check_management(s, op, item, row)
            notes = [safe] if safe else []
            if op.risky:
                job = revert_job_name(action, item, plan_id)
                menu = "/interface" if op.what == "interface" else "/ip route"
                verb = "enable" if op.disable else "disable"
                script = f'{menu} {verb} {item_id}; /system scheduler remove [find name="{job}"]'
                s.remove_scheduler_job(job)  # a stale one from an earlier attempt of the same plan
                s.add_scheduler_job(job, script, client.config.revert_seconds,
                                    f"aiops: undoes {action.name} {item} unless verified (plan {plan_id})")
                details.update(revert_job=job, revert_seconds=client.config.revert_seconds)
                notes.append(f"revert job {job} undoes it in {client.config.revert_seconds} s unless verified")
            if op.what == "interface":
                s.set_interface_disabled(item_id, op.disable)
            else:
                s.set_route_disabled(item_id, op.disable)
        with client.session() as s:  # read back on a fresh connection: we can still reach the router
            after = _find(s, op, item)
        if bool(after.get("disabled")) != op.disable:
            return Outcome(status="failed", details=details, output=f"{label}: the router did not take the change")
        if op.what == "interface":
            details["link_downs"] = int(after.get("link-downs") or 0)
        done = f"{label} {'disabled' if op.disable else 'enabled'} on {identity}"
        return Outcome(status="ok", details=details, output="; ".join([done, *notes]))
    except Refused as exc:
        return Outcome(status="failed", details=details, output=f"refused: {exc}")
    except RouterOSError as exc:
        extra = f"; revert job {details['revert_job']} stays armed" if "revert_job" in details else ""
        return Outcome(status="failed", details=details, output=f"{exc}{extra}"[:600])
