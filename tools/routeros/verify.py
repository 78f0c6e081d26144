"""Verification after a RouterOS action, and the confirm step that disarms its revert job.

An interface disable verifies when the interface is disabled and its link-downs counter has not moved
since the change (no more flaps reach the router), and traffic for the destinations it carried has an
active route elsewhere; an enable when the link is running and stable; a route disable when another
route for its destination is active; a route enable when the route is active. Only when the whole
verification succeeds is the revert job removed; otherwise it stays armed and undoes the change.
"""

from __future__ import annotations

from typing import Any

from core.models import ExecutionResult, VerificationCheck
from tools.routeros.client import RouterOSClient, RouterOSError, Session, _egress


def _check(s: Session, ex: ExecutionResult, evidence_id: str) -> VerificationCheck:
    d: dict[str, Any] = ex.details
    item, disable = str(d.get("item", "")), bool(d.get("disable"))
    query = f"/interface/print ?name={item}" if d.get("what") == "interface" else f"/ip/route/print ?.id={item}"
    routes = s.routes()
    if d.get("what") == "interface":
        row = s.interface(item)
        if row is None:
            return VerificationCheck(evidence_id=evidence_id, query=query, recovered=False, note=f"{item} is gone")
        downs = int(row.get("link-downs") or 0)
        before = d.get("link_downs")
        stable = before is None or downs == int(before)
        if disable:
            addrs = s.addresses()
            carried = {r.get("dst-address") for r in routes if _egress(r, addrs) == item and not r.get("dynamic")}
            orphaned = sorted(str(dst) for dst in carried
                              if not any(o.get("active") for o in routes if o.get("dst-address") == dst))
            ok = bool(row.get("disabled")) and stable and not orphaned
            note = (f"{item} disabled={row.get('disabled')}, link-downs {downs} (at the change: {before})"
                    + (f"; no active route left for {', '.join(orphaned)}" if orphaned else
                       f"; {len(carried)} destination(s) it carried are routed elsewhere" if carried else ""))
        else:
            ok = bool(row.get("running")) and not row.get("disabled") and stable
            note = f"{item} running={row.get('running')}, link-downs {downs} (at the change: {before})"
        return VerificationCheck(evidence_id=evidence_id, query=query, before=float(before) if before is not None else None,
                                 after=float(downs), recovered=ok, note=note)
    route = next((r for r in routes if str(r.get(".id", "")).upper() == item), None)
    if route is None:
        return VerificationCheck(evidence_id=evidence_id, query=query, recovered=False, note=f"route {item} is gone")
    if disable:
        alt = next((o for o in routes if o.get("dst-address") == route.get("dst-address") and o.get("active")), None)
        ok = bool(route.get("disabled")) and alt is not None
        note = (f"route {item} disabled={route.get('disabled')}; "
                + (f"{alt.get('dst-address')} now via {alt.get('gateway')} ({alt.get('.id')})" if alt
                   else f"no active route for {route.get('dst-address')}"))
    else:
        ok = bool(route.get("active"))
        note = f"route {item} active={route.get('active')}"
    return VerificationCheck(evidence_id=evidence_id, query=query, recovered=ok, note=note)


def checks(client: RouterOSClient, executions: list[ExecutionResult], evidence_id: str = "") -> list[VerificationCheck]:
    mine = [e for e in executions if e.status == "ok" and e.action.startswith("routeros_") and e.details.get("item")]
    if not mine:
        return []
    try:
        with client.session() as s:
            return [_check(s, e, evidence_id or f"exec:{e.action}") for e in mine]
    except RouterOSError as exc:
        return [VerificationCheck(evidence_id=evidence_id or f"exec:{e.action}", query=str(e.details.get("item")),
                                  recovered=False, note=f"cannot read the router: {exc}"[:300]) for e in mine]


def confirm(client: RouterOSClient, executions: list[ExecutionResult], recovered: bool) -> str:
    """Disarm the revert jobs when the change verified; otherwise say they stay armed."""
    jobs = [str(e.details["revert_job"]) for e in executions if e.status == "ok" and e.details.get("revert_job")]
    if not jobs:
        return ""
    if not recovered:
        return f"; revert job(s) {', '.join(jobs)} left armed: the change will be undone"
    try:
        with client.session() as s:
            for job in jobs:
                s.remove_scheduler_job(job)
    except RouterOSError as exc:
        return f"; could not remove revert job(s) {', '.join(jobs)}: {exc} (the change will be undone)"
    return f"; verified: revert job(s) {', '.join(jobs)} removed, the change stays"
