"""Reading an untrusted Alertmanager payload: size, encoding, nesting and shape, each refused in one line.

Every entry point that takes a webhook body (the CLI's `--alert FILE`, the HTTP API) goes through
`parse_webhook`, so a payload is refused the same way everywhere - before anything is written: no
checkpoint, no registry row. The limits come from settings (`MAX_PAYLOAD_BYTES`, `MAX_JSON_DEPTH`,
and the per-field limits `core.models` applies through the validation context).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from core.models import AlertmanagerWebhook
from core.settings import Settings


class PayloadError(ValueError):
    """The payload is refused; the message is one line naming the problem."""


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # the unrolled form: no per-character alternation
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (checked before json.loads can recurse).

    Strings are cut out first and only the brackets are walked, both by the regex engine: a 20-alert
    webhook is ~130 brackets in 12 kB, and this check sits on the webhook's hot path."""
    if text.count("{") + text.count("[") <= limit:  # cannot nest deeper than it opens
        return False
    depth = 0
    for ch in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_webhook(raw: bytes, settings: Settings, source: str = "payload") -> AlertmanagerWebhook:
    """The webhook in `raw`, or PayloadError("<source> ...: <problem>")."""
    if len(raw) > settings.MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{source} is {len(raw):,} bytes, more than MAX_PAYLOAD_BYTES ({settings.MAX_PAYLOAD_BYTES:,})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{source} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    if json_depth_exceeds(text, settings.MAX_JSON_DEPTH):
        raise PayloadError(f"{source} nests JSON deeper than MAX_JSON_DEPTH ({settings.MAX_JSON_DEPTH})")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"{source} is not JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer with more digits than Python converts
        raise PayloadError(f"{source} is not usable JSON: {str(exc)[:120]}") from None
    try:
        return AlertmanagerWebhook.model_validate(data, context=settings.payload_limits)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ").replace("\n", " ")[:200]
        n = exc.error_count()
        raise PayloadError(f"{source} is not an Alertmanager v4 webhook payload: {where}: {msg}"
                           f" ({n} problem{'s' if n > 1 else ''})") from None
