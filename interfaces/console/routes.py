"""The web console at `/ui/`: server-rendered pages over the same service the HTTP API uses.

Nothing is visible without a session (pages redirect to the sign-in form; fragments, events and charts
answer 401). Every state change is a POST form carrying the session's CSRF token, and goes through the
API's own functions: a decision through `routes._decide` (the runner's gate: plan hash, APPROVERS,
exactly once), the self-healing switch through `routes.switch_self_healing`. A service-token session
only reads.

Incident actions share one handler: `POST /ui/incidents/{id}/actions/{action}` looks the action up in
`ACTIONS` and the page includes one form partial per action (`templates/actions/<action>.html`): the
decision (approve, reject) and the on-call lifecycle (ack, assign, comment, snooze, close), the latter
through the API's `routes.change_incident` (service/lifecycle.py: APPROVERS, compare-and-set, audit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from core.models import IncidentReport, IncidentStatus
from interfaces import charts
from interfaces.api import routes as api
from interfaces.api.auth import Caller
from interfaces.api.schemas import (
    AssignRequest,
    CloseRequest,
    CommentRequest,
    DecisionRequest,
    SelfHealingSwitch,
    SnoozeRequest,
)
from interfaces.console.session import FLASH_COOKIE, LOGIN_COOKIE, Session, Sessions
from interfaces.console.views import SEVERITIES, Views

if TYPE_CHECKING:
    from service.runner import IncidentRunner

HERE = Path(__file__).parent
MAX_FORM_BYTES = 16 * 1024
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
router = APIRouter(prefix="/ui", include_in_schema=False)


class SignInRequired(Exception):
    """No valid session: a page redirects to the sign-in form, anything else is a 401."""


class Refused(Exception):
    """An action the console will not do (one line for the flash message)."""


@dataclass
class Console:
    sessions: Sessions
    views: Views


def console(request: Request) -> Console:
    state = request.app.state
    if getattr(state, "console", None) is None:
        svc = api._svc(request)
        state.console = Console(Sessions(svc.settings, svc.auth), Views(svc.runner))
    return state.console  # type: ignore[no-any-return]


def session(request: Request) -> Session:
    s = console(request).sessions.current(request)
    if s is None:
        raise SignInRequired
    return s


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def page(request: Request, name: str, s: Session | None = None, status: int = 200, csrf: str = "",
         **ctx: Any) -> HTMLResponse:
    c = console(request)
    flash = c.sessions.read_flash(request)
    html = templates.get_template(name).render(
        request=request, me=s, csrf=c.sessions.csrf(s) if s else csrf, flash=flash, **ctx)
    response = HTMLResponse(html, status_code=status)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/ui")
    return _headers(response)  # type: ignore[return-value]


def redirect(url: str) -> RedirectResponse:
    return _headers(RedirectResponse(url, status_code=303))  # type: ignore[return-value]


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body, at most MAX_FORM_BYTES (no multipart: nothing here uploads files)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"form larger than {MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "malformed form") from None


async def checked_form(request: Request, s: Session) -> dict[str, str]:
    data = await form(request)
    if not console(request).sessions.csrf_ok(s, data.get("csrf")):
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
    return data


def _next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    return value if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value else "/ui/"


# ----------------------------------------------------------------------------------- sign in --
@router.get("")
async def root() -> RedirectResponse:
    return redirect("/ui/")


@router.get("/login")
async def login_page(request: Request, next: str = "/ui/") -> HTMLResponse:
    c = console(request)
    if c.sessions.current(request) is not None:
        return redirect(_next(next))  # type: ignore[return-value]
    sealed, token = c.sessions.new_login()
    response = page(request, "login.html", csrf=token, next=_next(next),
                    no_tokens=not (c.sessions.auth.users or c.sessions.auth.service_token))
    c.sessions.set_login(response, request, sealed)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    c = console(request)
    data = await form(request)
    target = _next(data.get("next"))
    if not c.sessions.login_ok(request, data.get("csrf")):
        response = redirect(f"/ui/login?{urlencode({'next': target})}")
        c.sessions.flash(response, request, "error", "the sign-in form expired: try again")
        return response
    s = c.sessions.open(data.get("token", "").strip(), request)
    if s is None:
        response = redirect(f"/ui/login?{urlencode({'next': target})}")
        c.sessions.flash(response, request, "error", "unknown token: use a user token from API_TOKENS")
        return response
    response = redirect(target)
    c.sessions.set(response, request, s)
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    c = console(request)
    s = session(request)
    await checked_form(request, s)
    c.sessions.revoke(s)
    response = redirect("/ui/login")
    c.sessions.clear(response)
    return response


# --------------------------------------------------------------------------------- incidents --
def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    status = q.get("status", "")
    severity = q.get("severity", "")
    return {"status": status if status in {s.value for s in IncidentStatus} else "",
            "severity": severity if severity in SEVERITIES else "",
            "service": q.get("service", "").strip()[:200]}


@router.get("/")
async def incidents(request: Request) -> HTMLResponse:
    s = session(request)
    filters = _filters(request)
    rows = await console(request).views.rows(status=filters["status"], severity=filters["severity"],
                                             service=filters["service"])
    return page(request, "list.html", s, rows=rows, filters=filters, statuses=[x.value for x in IncidentStatus],
                severities=SEVERITIES, query=urlencode(filters))


@router.get("/rows")
async def rows(request: Request) -> HTMLResponse:
    """The list's rows alone: what the page re-fetches when the event stream says something changed."""
    s = session(request)
    f = _filters(request)
    rows = await console(request).views.rows(status=f["status"], severity=f["severity"], service=f["service"])
    return page(request, "rows.html", s, rows=rows)


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    """The API's event stream (`GET /api/v1/events`) for a console session (EventSource sends no header)."""
    s = session(request)
    return await api.events(request, api._svc(request), s.caller())


@router.get("/incidents/{incident_id}")
async def incident(request: Request, incident_id: str) -> HTMLResponse:
    s = session(request)
    view = await console(request).views.incident(incident_id)
    if view is None:
        return page(request, "missing.html", s, status=404, incident_id=incident_id)
    svc = api._svc(request)
    return page(request, "incident.html", s, v=view, r=view.report,
                actions=available_actions(view.report, "decide"), on_call=available_actions(view.report, "on_call"),
                may_decide=_may_decide(s, svc.runner))


@router.get("/incidents/{incident_id}/charts/{evidence_id}.svg")
async def chart(request: Request, incident_id: str, evidence_id: str) -> Response:
    session(request)
    report = await console(request).views.report(incident_id)
    data = await asyncio.to_thread(charts.render, report, evidence_id, "svg") if report else None
    if data is None:
        raise HTTPException(404, f"no chart {evidence_id!r} for incident {incident_id!r}")
    return Response(data, media_type="image/svg+xml", headers={
        "Content-Security-Policy": SVG_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"})


# ----------------------------------------------------------------------------------- actions --
Action = Callable[[Request, Session, str, dict[str, str]], Awaitable[str]]


def _may_decide(s: Session, runner: IncidentRunner) -> str | None:
    """None when this session may decide; else why not (the runner checks again: this only hides buttons)."""
    if s.kind != "user":
        return "signed in with the service token: it may only read"
    if not runner.authorised(s.user, "http"):
        return f"{s.user} is not in APPROVERS"
    return None


async def _decision(request: Request, s: Session, incident_id: str, data: dict[str, str], decision: str) -> str:
    svc = api._svc(request)
    if s.kind != "user":
        raise Refused("the service token (AIOPS_API_TOKEN) may only read: sign in with a user token")
    plan_id = data.get("plan_id", "")
    row = await asyncio.to_thread(svc.runner.plan, plan_id)
    if row is None or row.incident_id != incident_id:
        raise Refused(f"plan {plan_id!r} is not a plan of {incident_id}")
    try:
        body = DecisionRequest(plan_hash=data.get("plan_hash", ""), comment=data.get("comment", ""))
    except ValidationError as exc:
        raise Refused(f"invalid decision: {exc.errors()[0]['msg']}") from None
    try:  # the API's own decision: its refusals are its HTTP answers (interfaces/api/errors.py), shown as one line
        result = await api._decide(plan_id, body, svc, Caller(s.user, "user", "http"), decision)
    except HTTPException as exc:
        raise Refused(str(exc.detail)) from None
    verb = "approved" if decision == "approve" else "rejected"
    return f"{plan_id} {verb}: the incident is {result.status}"


async def approve(request: Request, s: Session, incident_id: str, data: dict[str, str]) -> str:
    return await _decision(request, s, incident_id, data, "approve")


async def reject(request: Request, s: Session, incident_id: str, data: dict[str, str]) -> str:
    return await _decision(request, s, incident_id, data, "reject")


def _on_call_action(op: str) -> Action:
    async def act(request: Request, s: Session, incident_id: str, data: dict[str, str]) -> str:
        if s.kind != "user":
            raise Refused("the service token (AIOPS_API_TOKEN) may only read: sign in with a user token")
        try:  # the API's own bodies: the same bounds as POST /api/v1/incidents/{id}/...
            fields: dict[str, Any] = {}
            if op == "assign":
                fields["to"] = AssignRequest(to=data.get("to", "").strip() or s.user).to
            elif op == "comment":
                fields["text"] = CommentRequest(text=data.get("text", "")).text
            elif op == "snooze":
                fields["until"] = SnoozeRequest.model_validate({"until": data.get("until", "")}).until
            elif op == "close":
                fields["text"] = CloseRequest(reason=data.get("reason", "")).reason
        except ValidationError as exc:
            raise Refused(f"invalid {op}: {exc.errors()[0]['msg']}") from None
        try:
            change = await api.change_incident(api._svc(request), Caller(s.user, "user", "http"), incident_id, op,
                                               **fields)
        except HTTPException as exc:
            raise Refused(str(exc.detail)) from None
        return {"ack": f"{incident_id} acknowledged by {s.user}",
                "assign": f"{incident_id} assigned to {change.on_call.assignee}",
                "comment": f"comment added to {incident_id}",
                "snooze": f"{incident_id} snoozed until {change.on_call.snoozed_until}",
                "close": f"{incident_id} closed" + (" (its plan is withdrawn)" if change.decision_state == "withdrawn"
                                                    else "")}[op]

    return act


def _pending(r: IncidentReport) -> bool:
    return r.plan is not None and r.status.value == IncidentStatus.AWAITING_APPROVAL.value


def _open(r: IncidentReport) -> bool:
    return r.status.value != IncidentStatus.CLOSED.value


# action name -> (handler, group, may it be offered for this report); the page includes actions/<name>.html
ACTIONS: dict[str, tuple[Action, str, Callable[[IncidentReport], bool]]] = {
    "approve": (approve, "decide", _pending),
    "reject": (reject, "decide", _pending),
    "ack": (_on_call_action("ack"), "on_call", lambda r: _open(r) and not r.on_call.acknowledged_by),
    "assign": (_on_call_action("assign"), "on_call", _open),
    "comment": (_on_call_action("comment"), "on_call", lambda r: True),
    "snooze": (_on_call_action("snooze"), "on_call", _open),
    "close": (_on_call_action("close"), "on_call",
              lambda r: _open(r) and r.status.value not in ("running", "executing")),
}


def available_actions(report: IncidentReport, group: str) -> list[str]:
    return [name for name, (_, g, offered) in ACTIONS.items() if g == group and offered(report)]


@router.post("/incidents/{incident_id}/actions/{action}")
async def act(request: Request, incident_id: str, action: str) -> Response:
    s = session(request)
    data = await checked_form(request, s)
    entry = ACTIONS.get(action)
    if entry is None:
        raise HTTPException(404, f"unknown action {action!r}")
    c = console(request)
    response = redirect(f"/ui/incidents/{incident_id}")
    try:
        c.sessions.flash(response, request, "ok", await entry[0](request, s, incident_id, data))
    except Refused as exc:
        c.sessions.flash(response, request, "error", f"refused: {exc}")
    return response


# ------------------------------------------------------------------------------ self-healing --
@router.get("/self-healing")
async def self_healing(request: Request) -> HTMLResponse:
    from service import autonomy

    s = session(request)
    svc = api._svc(request)
    status = await api.self_healing(svc, s.caller())
    history = await asyncio.to_thread(autonomy.history, svc.settings)
    return page(request, "self_healing.html", s, heal=status, actions=list(reversed(history))[:30],
                may_switch=_may_decide(s, svc.runner))


@router.post("/self-healing")
async def switch(request: Request) -> Response:
    s = session(request)
    data = await checked_form(request, s)
    svc = api._svc(request)
    c = console(request)
    response = redirect("/ui/self-healing")
    why_not = _may_decide(s, svc.runner)
    if why_not or data.get("enabled") not in ("true", "false"):
        c.sessions.flash(response, request, "error", f"refused: {why_not or 'enabled must be true or false'}")
        return response
    try:
        status = await api.switch_self_healing(SelfHealingSwitch(enabled=data["enabled"] == "true"), svc,
                                               Caller(s.user, "user", "http"))
    except HTTPException as exc:
        c.sessions.flash(response, request, "error", f"refused: {exc.detail}")
        return response
    c.sessions.flash(response, request, "ok", f"self-healing switched {'on' if status.runtime_enabled else 'off'}")
    return response


# ---------------------------------------------------------------------------------- install --
def install_console(app: FastAPI) -> None:
    """Mount the console on `app`: its pages, its static files, and the sign-in redirect."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, _exc: SignInRequired) -> Response:
        """A page or form without a session goes to the sign-in form (and back after); the rest is 401."""
        path = request.url.path
        if not path.endswith(".svg") and path not in ("/ui/rows", "/ui/events"):  # a page or a form
            target = (path + (f"?{request.url.query}" if request.url.query else "")) if request.method == "GET" \
                else "/ui/"
            return redirect(f"/ui/login?{urlencode({'next': target})}")
        return _headers(Response("sign in at /ui/login", status_code=401, media_type="text/plain"))
