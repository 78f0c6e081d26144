"""`core.payload.loads` (orjson on the webhook's hot path) gives exactly what `json.loads` gives: the
same value, or an exception where `json.loads` raises one, for every body (a table of the cases where the
two parsers differ, and generated documents)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.payload import loads


def outcome(parse: Any, raw: bytes) -> tuple[str, str]:
    try:
        value = parse(raw)
    except (ValueError, RecursionError) as exc:
        return "refused", type(exc).__name__
    return "read", repr(value)  # repr: 1 and 1.0 differ, as do -0.0 and 0.0, and NaN equals NaN


def same_as_json(raw: bytes) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return  # parse_webhook refuses it before parsing
    expected = outcome(json.loads, text)  # what parse_webhook did before: json.loads of the decoded text
    got = outcome(lambda r: loads(r, text), raw)
    assert got[0] == expected[0] and (got[0] == "refused" or got == expected), (raw, got, expected)


TABLE = [
    b'{"a":123456789012345678901234567890}',  # orjson reads it as a float: json.loads decides
    b'{"a":-9223372036854775809}', b'{"a":18446744073709551615}', b'{"a":18446744073709551616}',
    b'{"a":"1234567890123456789"}',  # 19 digits in a string: json.loads, the same value
    b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}', b'{"a":1e400}', b'{"a":-1e400}',
    b'{"a":"\\ud800"}', b'{"\\udfff":1}', b'{"a":"\\ud83d\\ude00"}',
    b'{"a":1,"a":2}', b'\xef\xbb\xbf{"a":1}', b'{"a":"x\ny"}', b'{"a":"\\u0000"}', b'{"a":1}\x00',
    b'[1,]', b'{"a":01}', b'{"a":-0}', b'{"a":-0.0}', b'{"a":0.1e1}', b'{"a":1E2}', b'{"a":5e-324}',
    b'{"a":2.2250738585072011e-308}', b'{"a":1.7976931348623157e308}', b'{"a":0.30000000000000004}',
    b'', b' ', b'null', b'"x"', b'{"a":true}', b' {"a":1}\r\n', b'{"a":1}\x0c',
    b"[" * 1100 + b"]" * 1100,  # deeper than orjson reads: json.loads decides
]


@pytest.mark.parametrize("raw", TABLE)
def test_the_cases_where_the_parsers_differ(raw: bytes) -> None:
    same_as_json(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(alphabet=st.characters(codec=None), max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_generated_documents(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    same_as_json(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes(raw: bytes) -> None:
    same_as_json(raw)


def test_numbers_keep_their_type_and_value() -> None:
    value = loads(b'{"i":9007199254740993,"f":0.1,"z":-0.0}', '{"i":9007199254740993,"f":0.1,"z":-0.0}')
    assert value["i"] == 9007199254740993 and type(value["i"]) is int
    assert value["f"] == 0.1 and math.copysign(1, value["z"]) == -1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"0", b"9", b"5", b"a", b" ", b"-", b".", b"\xd9\xa3", b"\xef\xbc\x91",
                                 b"123456789", b"9999999999"]), max_size=40).map(b"".join))
def test_a_long_number_is_19_ascii_digits_in_a_row(raw: bytes) -> None:
    """The hot path's check for 19 digits in a row says what the regular expression \\d{19} says (ASCII
    digits only: an Arabic-Indic or full-width digit is not one)."""
    import re

    from core.payload import _long_number

    assert _long_number(raw) == bool(re.search(rb"\d{19}", raw)), raw
