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

import orjson
from pydantic import ValidationError

from core.models import AlertmanagerWebhook
from core.settings import Settings


class PayloadError(ValueError):
    """The payload is refused; the message is one line naming the problem."""


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # the unrolled form: no per-character alternation
_JSON_BRACKET = re.compile(r"[\[\]{}]")
_CONTAINERS = (dict, list)


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when arrays/objects in `text` nest deeper than `limit`, read from the text alone (for
    payloads `json.loads` refused, so the answer names the depth rather than a RecursionError).

    Strings are cut out first and only the brackets are walked, both by the regex engine."""
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


def nested_deeper(value: Any, limit: int) -> bool:
    """True when the parsed JSON `value` nests arrays/objects deeper than `limit` (the same depth
    `json_depth_exceeds` reads from text: the outermost container is 1).

    On the webhook's hot path: one level at a time, keeping only the containers (json.loads makes
    exact dicts and lists); for a 20-alert webhook ~50 us, an eighth of cutting the strings out of its
    12 kB of text."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for node in level:
            below += [c for c in (node.values() if type(node) is dict else node) if type(c) in _CONTAINERS]
        level = below
    return False


# 19 ASCII digits in a row: every digit made a "0", then one search for 19 of them (a tenth of the time of
# the regular expression \d{19}, which tries a match at every position: 27 µs for a one-alert body).
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_NINETEEN_DIGITS = b"0" * 19


def _long_number(raw: bytes) -> bool:
    return _NINETEEN_DIGITS in raw.translate(_DIGITS_AS_ZERO)


def loads(raw: bytes, text: str) -> Any:
    """`json.loads(text)` (`text` is `raw` decoded), the same value or the same exception, in a fifth of
    the time: orjson parses when it can give that value. It refuses what `json.loads` reads otherwise
    (NaN and Infinity, lone surrogate escapes, numbers out of a double's range, nesting past 1,024:
    then `json.loads` decides, as before), and it reads integers of more than 64 bits as floats, so a
    body with 19 digits in a row anywhere goes to `json.loads` as well (tests/unit/test_payload_loads.py)."""
    if not _long_number(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def parse_webhook(raw: bytes, settings: Settings, source: str = "payload") -> AlertmanagerWebhook:
    """The webhook in `raw`, or PayloadError("<source> ...: <problem>")."""
    if len(raw) > settings.MAX_PAYLOAD_BYTES:
        raise PayloadError(f"{source} is {len(raw):,} bytes, more than MAX_PAYLOAD_BYTES ({settings.MAX_PAYLOAD_BYTES:,})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{source} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    limit = settings.MAX_JSON_DEPTH
    too_deep = PayloadError(f"{source} nests JSON deeper than MAX_JSON_DEPTH ({limit})")
    try:
        data: Any = loads(raw, text)  # the C decoder bounds its own recursion (RecursionError)
    except (ValueError, RecursionError) as exc:
        if json_depth_exceeds(text, limit):
            raise too_deep from None
        if isinstance(exc, json.JSONDecodeError):
            raise PayloadError(f"{source} is not JSON: {exc.msg} at line {exc.lineno}") from None
        # e.g. an integer with more digits than Python converts
        raise PayloadError(f"{source} is not usable JSON: {str(exc)[:120]}") from None
    if text.count("{") + text.count("[") > limit and nested_deeper(data, limit):
        raise too_deep
    try:
        return AlertmanagerWebhook.model_validate(data, context=settings.payload_limits)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ").replace("\n", " ")[:200]
        n = exc.error_count()
        raise PayloadError(f"{source} is not an Alertmanager v4 webhook payload: {where}: {msg}"
                           f" ({n} problem{'s' if n > 1 else ''})") from None
