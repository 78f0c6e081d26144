"""Bearer-token authentication: who is calling, and may they do this.

- `API_TOKENS` / `API_TOKENS_FILE` name users (`alice:<token>`): their token identifies the approver, who
  is never taken from the request body. Whether that user may approve is the runner's gate (`APPROVERS`),
  the same as for the CLI.
- `AIOPS_API_TOKEN` is a service token: it may read and start analyses, never approve.
- The local token is written by a running service into its data dir (`service.json`, mode 0600) for the
  CLI on the same machine: with it, `X-Aiops-Approver` names the approver on the `cli` channel, exactly as
  `aiops approve --by NAME` does without a service.
- With no token configured at all, reads are open to loopback clients (a bare `aiops serve` on a laptop,
  which then listens on 127.0.0.1 only) and approvals over HTTP are refused (401): nobody can be
  identified. Off loopback an anonymous client gets nothing, not even `/health` or `/metrics`
  (see `interfaces.api.exposure`), unless `ALLOW_INSECURE_NO_AUTH=true`.
- Every switch (approve, reject, the self-healing kill switch) is behind the same gate as the CLI's:
  `agents.approval.authorised` (`APPROVERS`; Telegram ids on Telegram).

Every comparison is constant-time (`hmac.compare_digest`) and runs over the whole table, so timing says
nothing about which token, or how much of one, matched.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request

from agents.approval import authorised
from core.settings import Settings
from interfaces.api.exposure import anonymous_allowed


@dataclass(frozen=True)
class Caller:
    name: str
    kind: str  # "user" | "service" | "local" | "anonymous"
    channel: str = "http"


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


class Authenticator:
    def __init__(self, settings: Settings, local_token: str | None = None) -> None:
        self.settings = settings
        self.users = settings.api_users  # token -> user
        self.service_token = settings.AIOPS_API_TOKEN
        self.webhook_token = settings.WEBHOOK_TOKEN
        self.local_token = local_token

    @property
    def open_reads(self) -> bool:
        return not self.users and not self.service_token

    def identify(self, token: str | None, request: Request) -> Caller | None:
        if token is None:
            return None
        found: Caller | None = None
        for known, user in self.users.items():  # no early exit: constant work whatever matches
            if _same(token, known):
                found = Caller(user, "user")
        if self.service_token and _same(token, self.service_token):
            found = found or Caller("service", "service")
        if self.local_token and _same(token, self.local_token):
            who = request.headers.get("x-aiops-approver", "").strip()[:100] or "local"
            found = found or Caller(who, "local", channel="cli")
        return found

    def _anonymous_ok(self, request: Request) -> bool:
        return anonymous_allowed(request.client.host if request.client else None, self.settings)

    def reader(self, request: Request) -> Caller:
        token = bearer(request)
        caller = self.identify(token, request)
        if caller is not None:
            return caller
        if token is None and self.open_reads and self._anonymous_ok(request):
            return Caller("anonymous", "anonymous")
        raise _unauthorised("a valid bearer token is required" if token is None else "invalid bearer token")

    def prober(self, request: Request) -> Caller:
        """`/health` and `/metrics`: anonymous from loopback (a local health check), else a reader."""
        if bearer(request) is None and self._anonymous_ok(request):
            return Caller("anonymous", "anonymous")
        return self.reader(request)

    def approver(self, request: Request) -> Caller:
        token = bearer(request)
        caller = self.identify(token, request)
        if caller is None:
            if not self.users and token is None:
                raise _unauthorised("approvals need a user token: set API_TOKENS (user:token) on the service")
            raise _unauthorised("a valid bearer token is required" if token is None else "invalid bearer token")
        if caller.kind == "service":
            raise HTTPException(403, "the service token (AIOPS_API_TOKEN) cannot approve: use a user token")
        return caller

    def switcher(self, request: Request) -> Caller:
        """A state-changing call that is not a plan decision (the self-healing switch): an approver who
        passes the approval gate. Decisions go through the runner, which applies the same gate and
        records a refusal in the plan's audit trail."""
        caller = self.approver(request)
        if not authorised(caller.name, caller.channel, self.settings):
            raise HTTPException(403, f"{caller.name!r} is not an authorised approver for {caller.channel} (APPROVERS)")
        return caller

    def local(self, request: Request) -> Caller:
        caller = self.identify(bearer(request), request)
        if caller is None or caller.kind != "local":
            raise _unauthorised("this endpoint is for the local CLI only")
        return caller

    def webhook(self, request: Request) -> None:
        if not self.webhook_token:
            if not self._anonymous_ok(request):
                raise _unauthorised("no WEBHOOK_TOKEN is configured: the webhook takes alerts from loopback only")
            return
        token = bearer(request)
        if token is None or not _same(token, self.webhook_token):
            raise _unauthorised("webhook bearer token missing or wrong (Alertmanager http_config.authorization)")


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
