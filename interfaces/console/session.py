"""Console sessions: a signed cookie for whoever signed in with a token, and the CSRF tokens of its forms.

Signing in trades a token the API already knows (`API_TOKENS` user, or the `AIOPS_API_TOKEN` service
token, which may only read) for an HttpOnly, SameSite=Strict cookie (`Secure` over https) holding the
user, a random session id, an expiry, and a keyed hash of the token used: the session ends when the
token is rotated or removed from the settings, at the expiry, or at sign-out (its id is revoked), and a
restart ends every session unless CONSOLE_SESSION_SECRET keeps the signing key. Every form carries a
CSRF token derived from the session id (or, for the sign-in form, from a short-lived pre-session
cookie), checked in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Literal

from fastapi import Request, Response
from pydantic import BaseModel, ValidationError

from core.settings import Settings
from interfaces.api.auth import Authenticator, Caller

COOKIE = "aiops_session"
LOGIN_COOKIE = "aiops_login"
FLASH_COOKIE = "aiops_flash"
PATH = "/ui"
LOGIN_SECONDS = 600  # a sign-in form is good for ten minutes
_MAX_REVOKED = 10_000


class Session(BaseModel):
    user: str
    kind: Literal["user", "service"]
    sid: str  # names this session: its CSRF token derives from it, sign-out revokes it
    tid: str  # keyed hash of the token it was opened with
    exp: float

    def caller(self) -> Caller:
        return Caller(self.user, self.kind, channel="http")


class Flash(BaseModel):
    kind: Literal["ok", "error"]
    text: str


class Sessions:
    def __init__(self, settings: Settings, auth: Authenticator) -> None:
        secret = settings.CONSOLE_SESSION_SECRET
        self._key = (hashlib.sha256(b"aiops-console:" + secret.encode()).digest() if secret
                     else secrets.token_bytes(32))
        self.auth = auth
        self.ttl = settings.CONSOLE_SESSION_HOURS * 3600
        self._revoked: dict[str, float] = {}  # sid -> its expiry (forgotten once past it)

    # ------------------------------------------------------------------------------ signing --
    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + data, hashlib.sha256).digest()

    def _seal(self, purpose: str, payload: dict[str, object]) -> str:
        data = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(data)}.{_b64(self._mac(purpose, data))}"

    def _open(self, purpose: str, value: str | None) -> dict[str, object] | None:
        if not value or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            data, sig = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._mac(purpose, data)):
            return None
        try:
            out = json.loads(data)
        except ValueError:
            return None
        return out if isinstance(out, dict) else None

    def _token_id(self, token: str) -> str:
        return _b64(self._mac("token", token.encode("utf-8", "surrogatepass")))[:22]

    # ------------------------------------------------------------------------------ sessions --
    def open(self, token: str, request: Request) -> Session | None:
        """A new session for `token`, or None: unknown, or a kind the console does not take (the local
        CLI token names any approver in a header; it is for the CLI only)."""
        caller = self.auth.identify(token, request)
        if caller is None or caller.kind not in ("user", "service"):
            return None
        return Session(user=caller.name, kind=caller.kind, sid=secrets.token_urlsafe(16),  # type: ignore[arg-type]
                       tid=self._token_id(token), exp=time.time() + self.ttl)

    def current(self, request: Request) -> Session | None:
        raw = self._open("session", request.cookies.get(COOKIE))
        if raw is None:
            return None
        try:
            s = Session.model_validate(raw)
        except ValidationError:
            return None
        if s.exp <= time.time() or s.sid in self._revoked or not self._still_valid(s):
            return None
        return s

    def _still_valid(self, s: Session) -> bool:
        """The token it was opened with is still configured for the same user (constant work per token)."""
        found = False
        if s.kind == "user":
            for token, user in self.auth.users.items():
                found |= hmac.compare_digest(self._token_id(token), s.tid) and user == s.user
        elif self.auth.service_token:
            found = hmac.compare_digest(self._token_id(self.auth.service_token), s.tid)
        return found

    def revoke(self, s: Session) -> None:
        now = time.time()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        if len(self._revoked) < _MAX_REVOKED:
            self._revoked[s.sid] = s.exp

    def csrf(self, s: Session) -> str:
        return _b64(self._mac("csrf", s.sid.encode()))[:32]

    def csrf_ok(self, s: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(s).encode(), str(token).encode())

    # ------------------------------------------------------------------------------- cookies --
    @staticmethod
    def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")

    def set(self, response: Response, request: Request, s: Session) -> None:
        self._cookie(response, request, COOKIE, self._seal("session", s.model_dump()), int(self.ttl))

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path=PATH)

    def new_login(self) -> tuple[str, str]:
        """(pre-session cookie value, the sign-in form's CSRF token bound to it)."""
        nonce = secrets.token_urlsafe(16)
        return (self._seal("login", {"n": nonce, "exp": time.time() + LOGIN_SECONDS}),
                _b64(self._mac("login-csrf", nonce.encode()))[:32])

    def set_login(self, response: Response, request: Request, sealed: str) -> None:
        self._cookie(response, request, LOGIN_COOKIE, sealed, LOGIN_SECONDS)

    def login_ok(self, request: Request, token: str | None) -> bool:
        raw = self._open("login", request.cookies.get(LOGIN_COOKIE))
        if raw is None or not isinstance(raw.get("n"), str) or float(raw.get("exp", 0)) <= time.time():  # type: ignore[arg-type]
            return False
        expected = _b64(self._mac("login-csrf", str(raw["n"]).encode()))[:32]
        return bool(token) and hmac.compare_digest(expected.encode(), str(token).encode())

    def flash(self, response: Response, request: Request, kind: Literal["ok", "error"], text: str) -> None:
        """A one-line message for the next page (signed, so a crafted link cannot show one)."""
        self._cookie(response, request, FLASH_COOKIE, self._seal("flash", {"kind": kind, "text": text[:500]}), 60)

    def read_flash(self, request: Request) -> Flash | None:
        """The message a redirect left (the page that shows it deletes the cookie: `FLASH_COOKIE`)."""
        raw = self._open("flash", request.cookies.get(FLASH_COOKIE))
        try:
            return Flash.model_validate(raw) if raw else None
        except ValidationError:
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc
