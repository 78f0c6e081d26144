"""The webhook's JSON depth check: the walk over the parsed value agrees with the text scan everywhere."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from core.payload import PayloadError, json_depth_exceeds, nested_deeper, parse_webhook
from core.settings import load_settings


def _random_json(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(["x", '"[{"', "]}\\\"", 1, 2.5, None, True, "a]b}c"])
    if rng.random() < 0.5:
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"k{i}[": _random_json(rng, depth - 1) for i in range(rng.randint(0, 3))}


def test_the_walk_and_the_text_scan_agree_on_random_documents() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        value = _random_json(rng, rng.randint(0, 12))
        text = json.dumps(value)
        for limit in (1, 2, 4, 8):
            assert nested_deeper(value, limit) == json_depth_exceeds(text, limit), (text, limit)


def test_exact_boundary_and_scalars() -> None:
    assert not nested_deeper("plain", 1) and not nested_deeper(3, 1)
    assert not nested_deeper([[[]]], 3) and nested_deeper([[[]]], 2)
    assert nested_deeper({"a": [{"b": {}}]}, 3) and not nested_deeper({"a": [{"b": {}}]}, 4)


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000,  # valid, beyond the decoder's recursion
                                 b"[" * 40 + b"1",  # invalid and deep: the answer names the depth
                                 b'{"alerts": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}"])
def test_deep_payloads_are_refused_for_their_depth(raw: bytes, tmp_path: Path) -> None:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path)
    with pytest.raises(PayloadError, match="deeper than MAX_JSON_DEPTH"):
        parse_webhook(raw, settings)


def test_shallow_invalid_json_is_still_named_as_such(tmp_path: Path) -> None:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path)
    with pytest.raises(PayloadError, match="is not JSON"):
        parse_webhook(b'{"alerts": [1, 2', settings)
