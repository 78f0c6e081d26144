"""Cache keys: what is normalised away, and what still tells two requests apart."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from core.models import Alert
from memory.cache import KEY_VERSION, fingerprint, normalise, normalise_text


def _webhook_alert(**overrides: object) -> dict[str, object]:
    alert: dict[str, object] = {
        "status": "firing",
        "labels": {"alertname": "HighCPU", "service": "web", "severity": "critical", "instance": "10.0.0.12:9100"},
        "annotations": {
            "summary": "CPU on web is 93.4521876%",
            "description": "request 550e8400-e29b-41d4-a716-446655440000 slow at 2026-11-24T21:24:15.123Z "
                           "in container 3f9a2b7c1d0e (pid 183742)",
        },
        "startsAt": "2026-11-24T21:24:15.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
        "fingerprint": "a1b2c3d4e5f60718",
    }
    alert.update(overrides)
    return alert


def test_key_has_namespace_version_and_kind() -> None:
    key = fingerprint("analysis", {"q": "x"})
    prefix = f"aiops:cache:{KEY_VERSION}:analysis:"
    assert key.startswith(prefix)
    assert len(key) == len(prefix) + 64
    assert fingerprint("playbook", {"q": "x"}) != key
    assert fingerprint("nl", {"q": "x"}).split(":")[3] == "nl"


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown cache kind"):
        fingerprint("answers", {"q": "x"})  # type: ignore[arg-type]


def test_refired_alert_maps_to_the_same_key() -> None:
    first = _webhook_alert()
    again = _webhook_alert(
        startsAt="2026-11-24T22:01:02Z",
        fingerprint="ffff0000aaaa9999",
        annotations={
            # every volatile part differs, plus whitespace
            "summary": "CPU on web is  97.0000012%",
            "description": "request 123e4567-e89b-12d3-a456-426614174000 slow at 2026-11-25 01:02:03+01:00\n"
                           "in container 9c8b7a6f5e4d (pid 99121)",
        },
    )
    # dict key order must not matter either
    reordered = dict(reversed(list(again.items())))
    labels = again["labels"]
    assert isinstance(labels, dict)
    reordered["labels"] = dict(reversed(list(labels.items())))
    assert fingerprint("analysis", first) == fingerprint("analysis", reordered)


@pytest.mark.parametrize(
    "change",
    [
        {"labels": {"alertname": "HighMemory", "service": "web", "severity": "critical", "instance": "10.0.0.12:9100"}},
        {"labels": {"alertname": "HighCPU", "service": "db", "severity": "critical", "instance": "10.0.0.12:9100"}},
        {"labels": {"alertname": "HighCPU", "service": "web", "severity": "critical", "instance": "10.0.0.13:9100"}},
        {"status": "resolved"},
        {"annotations": {"summary": "CPU on web is 93.4521876%", "description": "disk full"}},
    ],
)
def test_different_content_gets_a_different_key(change: dict) -> None:
    assert fingerprint("analysis", _webhook_alert()) != fingerprint("analysis", _webhook_alert(**change))


def test_pydantic_model_and_datetimes() -> None:
    a = Alert.model_validate(_webhook_alert())
    b = Alert.model_validate(_webhook_alert(startsAt=datetime(2030, 1, 1, tzinfo=UTC).isoformat()))
    assert fingerprint("analysis", a) == fingerprint("analysis", b)
    # a model hashes like its JSON dump (field names), so callers may pass either
    assert fingerprint("analysis", a) == fingerprint("analysis", a.model_dump(mode="json"))
    # raw datetimes are erased like timestamp strings
    assert normalise({"window": datetime(2026, 1, 1, 12, 0, tzinfo=UTC)}) == {"window": "<ts>"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("at 2026-11-24T21:24:15.123Z x", "at <ts> x"),
        ("2026-11-24 21:24:15 UTC", "<ts>"),
        ("2026/11/24 21:24:15,5 +0100 y", "<ts> y"),
        ('10.1.2.3 - - [24/Nov/2026:21:24:15 +0000] "GET /"', '10.1.2.3 - - [<ts>] "GET /"'),
        ("Nov 24 21:24:15 host sshd[4242]: x", "<ts> host sshd[<id>]: x"),
        ("worker pid=77 PID: 12 pid 3 items[3]", "worker pid=<id> PID: <id> pid <id> items[3]"),
        ("on 2026-11-24 at 21:24:15.5", "on <ts> at <ts>"),
        ("req 550E8400-E29B-41D4-A716-446655440000 done", "req <uuid> done"),
        ("inc-3f9a2b7c1d0e and sha 9fceb02d0ae598e95dc970b74767f19372d61af8", "inc-<id> and sha <id>"),
        ("addr 0x7f3a2c", "addr <id>"),
        ("epoch 1732480000 and 1732480000123", "epoch <id> and <id>"),
        ("pid 183742 offset 1048576", "pid <id> offset <id>"),
        ("value 91.2345678% and took 0.1234s.", "value <num>% and took <num>s."),
        # kept: short numbers, status codes, ports, IPs, versions, MACs, short decimals, hex-only words
        ("HTTP 500 on :8080 from 10.0.0.123 v1.2.345 0.25", "HTTP 500 on :8080 from 10.0.0.123 v1.2.345 0.25"),
        ("mac aa:bb:cc:11:22:33 ipv6 fe80::1234:5678:9abc", "mac aa:bb:cc:11:22:33 ipv6 fe80::1234:5678:9abc"),
        ("word deadbeefcafe web-1", "word deadbeefcafe web-1"),
        ("  many \t\n spaces  ", "many spaces"),
    ],
)
def test_string_rules(text: str, expected: str) -> None:
    assert normalise_text(text) == expected


def test_volatile_keys_are_dropped_everywhere() -> None:
    payload = {
        "question": "why is web slow?",
        "startsAt": "x", "created_at": 1, "updatedAt": 2, "@timestamp": 3, "ts": 4,
        "request_id": "r", "traceId": "t", "span-id": "s", "fingerprint": "f",
        "nested": [{"endsAt": "y", "keep": "format"}],
        "format": "json", "chat": "kept",  # end in 'at' but are not timestamps
    }
    assert normalise(payload) == {
        "question": "why is web slow?",
        "nested": [{"keep": "format"}],
        "format": "json",
        "chat": "kept",
    }


def test_containers_numbers_and_unsupported_types() -> None:
    assert normalise({"tags": {"b", "a"}, "pair": (1, 2.0), "x": 1.5}) == {"tags": ["a", "b"], "pair": [1, 2], "x": 1.5}
    assert fingerprint("nl", {"n": 1}) == fingerprint("nl", {"n": 1.0})
    assert fingerprint("nl", {"n": 1}) != fingerprint("nl", {"n": 2})
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint("nl", {"obj": object()})


def test_normalise_does_not_mutate_input() -> None:
    payload = _webhook_alert()
    before = copy.deepcopy(payload)
    fingerprint("analysis", payload)
    assert payload == before
