"""Who can reach the service: the bind address `aiops serve` chooses, and what an anonymous client may do.

Closed by default. Off loopback, every caller needs a token: Alertmanager the `WEBHOOK_TOKEN`, everyone
else a reader/user token (`API_TOKENS`, `AIOPS_API_TOKEN`). So:

- with no token configured and no address asked for, the service listens on 127.0.0.1 only (the
  `API_HOST` default 0.0.0.0 applies only once both kinds of token are set);
- asked to listen on any other address (`--host`, `API_HOST`) without both kinds of token, it refuses
  to start, with one line naming the variables to set;
- `ALLOW_INSECURE_NO_AUTH=true` overrides that (and lets anonymous clients off loopback in), and says
  so loudly at every start.

Inside the app the same rule holds per request: an anonymous client (no token where none is configured,
or `/health` and `/metrics`) is served only from a loopback address, so a service bound elsewhere by
hand (uvicorn, a container port) is closed too. uvicorn takes the client address from
`X-Forwarded-For` only when the proxy itself is on 127.0.0.1, so a local reverse proxy that forwards
the header keeps remote clients remote.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from core.settings import Settings

LOOPBACK = "127.0.0.1"


class InsecureBind(ValueError):
    """`aiops serve` was asked to listen off loopback without authentication: one line, exit 2."""


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def missing_tokens(settings: Settings) -> list[str]:
    """What off-loopback service still lacks: the webhook token and/or a reader/user token."""
    missing = []
    if not settings.WEBHOOK_TOKEN:
        missing.append("WEBHOOK_TOKEN")
    if not settings.api_users and not settings.AIOPS_API_TOKEN:
        missing.append("API_TOKENS (or AIOPS_API_TOKEN)")
    return missing


@dataclass(frozen=True)
class Binding:
    host: str
    note: str = ""  # said on the start line (why the service stays on loopback)
    warning: str = ""  # said on stderr and in the log at every start (ALLOW_INSECURE_NO_AUTH)


def choose_binding(settings: Settings, cli_host: str | None) -> Binding:
    """The address to listen on, or InsecureBind. `cli_host` is `--host`; `API_HOST` counts as asked
    for only when it is set in the environment (its default is not a request to be reachable)."""
    asked = cli_host or (settings.API_HOST if "API_HOST" in settings.model_fields_set else None)
    host = asked or settings.API_HOST
    missing = missing_tokens(settings)
    if settings.ALLOW_INSECURE_NO_AUTH:
        return Binding(host, warning="aiops serve: WARNING: ALLOW_INSECURE_NO_AUTH=true: " + (
            f"listening on {host} without {' and '.join(missing)}: anyone who can reach it can inject alerts, "
            "read incidents and start analyses" if missing and not is_loopback(host) else
            "anonymous clients off loopback are served wherever no token is configured"))
    if is_loopback(host) or not missing:
        return Binding(host)
    if asked is None:  # the default address, without the tokens it needs: stay on this machine
        return Binding(LOOPBACK, note=f"loopback only: set {' and '.join(missing)} to listen on {host}")
    raise InsecureBind(f"refusing to listen on {host} without authentication: set {' and '.join(missing)} "
                       f"(or listen on {LOOPBACK}, or set ALLOW_INSECURE_NO_AUTH=true)")


def anonymous_allowed(client_host: str | None, settings: Settings) -> bool:
    """May a caller without a token be served (where the endpoint allows anonymous callers at all)?"""
    return settings.ALLOW_INSECURE_NO_AUTH or is_loopback(client_host)
