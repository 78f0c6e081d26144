"""Secret redaction: applied to every log line, template and example before it can reach an LLM.

Why regexes and not entropy scoring: the secrets that end up in logs come in a handful of shapes
(an `Authorization` header, `password=` in a query string or a DSN, a cloud key id, a PEM block, a
JWT). Matching those shapes has few false positives, so the diagnosis still sees request ids and
hashes it may need. Anything replaced becomes `[REDACTED:<kind>]`, so a reader knows something was
there and what kind of thing it was.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SECRET_KEYS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token|"
    r"auth[_-]?token|api[_-]?key|apikey|x-api-key|private[_-]?key|secret[_-]?key|access[_-]?key|"
    r"session[_-]?id|sessionid|credentials?|aws_secret_access_key|aws_session_token"
)

# Order matters: whole blocks first, then structured shapes, then generic key=value.
_RULES: list[tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.S,
        ),
        "[REDACTED:private-key]",
    ),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED:jwt]"),
    (
        "known-token",
        re.compile(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
            r"sk-(?:proj-|live_|test_)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|"
            r"\d{8,10}:AA[A-Za-z0-9_-]{33})"
        ),
        "[REDACTED:api-key]",
    ),
    (
        "bearer",
        re.compile(
            r"(?i)\b(bearer|basic)\s+(?!\[REDACTED)[A-Za-z0-9._~+/=-]{8,}"
            r"|\b(token)\s+(?!\[REDACTED)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{16,}"
        ),
        lambda m: f"{m.group(1) or m.group(2)} [REDACTED:token]",
    ),
    (
        "aws-key-id",
        re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
        "[REDACTED:aws-key-id]",
    ),
    (  # scheme://user:password@host
        "url-password",
        re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(@)"),
        r"\1[REDACTED:password]\2",
    ),
    (  # password=..., "api_key": "...", token: ..., --password ...
        "key-value",
        re.compile(
            rf"(?i)(\b(?:{_SECRET_KEYS})\b[\"']?\s*[=:]\s*[\"']?|--(?:{_SECRET_KEYS})[= ])"
            r"(?!\[REDACTED)([^\s\"'&,;}]+)"
        ),
        r"\1[REDACTED:secret]",
    ),
    (  # the secret half of an AWS key pair, when it stands alone next to "aws"
        "aws-secret",
        re.compile(r"(?i)(aws.{0,20}?[=:]\s*[\"']?)([A-Za-z0-9/+=]{40})\b"),
        r"\1[REDACTED:aws-secret]",
    ),
]


def redact(text: str) -> str:
    """Replace secrets in `text` with `[REDACTED:<kind>]` markers. Idempotent."""
    for _kind, pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text


def redaction_kinds(text: str) -> list[str]:
    """Which kinds of secret `text` holds (for audit logs; never log the secret itself)."""
    return [kind for kind, pattern, _ in _RULES if pattern.search(text)]
