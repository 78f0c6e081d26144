"""The deterministic intent parser (English and Russian), the HTML split, and the new settings checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.settings import SettingsError, load_settings
from interfaces.telegram import render
from interfaces.telegram.intents import language, parse, time_range
from tests.sim.telegram import ApiError, parse_html

NOW = datetime(2026, 3, 11, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize("text, kind, lang, service, rng", [
    ("why is checkout slow since 10:00?", "analyze", "en", "checkout", "150m"),
    ("what's wrong with the payments-api in the last 2h", "analyze", "en", "payments-api", "2h"),
    ("check api-gw", "analyze", "en", "api-gw", "1h"),
    ("что с payments-api?", "analyze", "ru", "payments-api", "1h"),
    ("почему тормозит checkout с 11:00", "analyze", "ru", "checkout", "90m"),
    ("проверь сервис api-gw за 30 минут", "analyze", "ru", "api-gw", "30m"),
    ("show pending plans", "pending", "en", None, "1h"),
    ("планы на утверждении", "pending", "ru", None, "1h"),
    ("покажи инциденты", "incidents", "ru", None, "1h"),
    ("what's open?", "incidents", "en", None, "1h"),
    ("какой статус?", "status", "ru", None, "1h"),
    ("health", "status", "en", None, "1h"),
    ("help", "help", "en", None, "1h"),
    ("помощь", "help", "ru", None, "1h"),
    ("approve it", "decision", "en", None, "1h"),
    ("одобряю", "decision", "ru", None, "1h"),
    ("tell me a joke", "unknown", "en", None, "1h"),
    ("расскажи анекдот", "unknown", "ru", None, "1h"),
])
def test_intents(text: str, kind: str, lang: str, service: str | None, rng: str) -> None:
    intent = parse(text, NOW)
    assert (intent.kind, intent.lang, intent.service, intent.time_range) == (kind, lang, service, rng)


def test_ids_win_and_ranges() -> None:
    assert parse("show inc-0123456789ab please").incident_id == "inc-0123456789ab"
    assert parse("approve plan-0123456789ab").kind == "plan"  # free text at most shows the plan
    assert time_range("since 23:00", NOW) == "810m"  # yesterday evening
    assert time_range("за сутки", NOW) == "24h" and time_range("nothing", NOW) is None
    assert language("что с checkout?") == "ru" and language("what about checkout?") == "en"


def test_split_keeps_markup_valid_and_every_character() -> None:
    lines = [f"<b>{i}</b> {render.esc('<&> ' * 50)}" for i in range(100)] + [render.esc("&" * 5000)]
    parts = render.split("\n".join(lines))
    assert all(len(p) <= render.MAX_MESSAGE for p in parts)
    shown = "\n".join(parse_html(p) for p in parts)  # each part parses on its own
    assert shown.count("<&> ") == 100 * 50 and shown.count("&") == 100 * 50 + 5000
    with pytest.raises(ApiError):
        parse_html("<b>unclosed")
    with pytest.raises(ApiError):
        parse_html("a & b")


def test_settings_checks() -> None:
    s = load_settings(ADMIN_CHAT_ID="111, -1001", TELEGRAM_APPROVER_IDS="222", NOTIFY_ROUTES="pagerduty=critical")
    assert s.admin_chat_ids == {"111", "-1001", "222"} and s.telegram_chat_ids == [111, -1001]
    assert s.notify_routes == {"pagerduty": "critical"}
    for bad in ("@alice", "alice", "alice:bob", "1alice:111", "alice:111:222", "alice:111,alice:222"):
        with pytest.raises(SettingsError, match="TELEGRAM_APPROVER_IDS"):
            load_settings(TELEGRAM_APPROVER_IDS=bad)
    with pytest.raises(SettingsError, match="numeric Telegram ids"):
        load_settings(ADMIN_CHAT_ID="alice:111")  # chats are ids; people are named in TELEGRAM_APPROVER_IDS


def test_telegram_approvers_are_named() -> None:
    """`alice:111` names user 111: decisions and the audit trail say alice; a bare id stays an id."""
    from agents.approval import authorised

    s = load_settings(ADMIN_CHAT_ID="111,-1001", TELEGRAM_APPROVER_IDS="alice:111,bob.ops:222,333")
    assert s.admin_chat_ids == {"111", "-1001", "222", "333"}
    assert [s.telegram_name(i) for i in (111, 222, 333, 444)] == ["alice", "bob.ops", "333", "444"]
    assert all(authorised(who, "telegram", s) for who in ("alice", "bob.ops", "111", "333"))
    assert not any(authorised(who, "telegram", s) for who in ("444", "mallory", "-1001x"))
    assert not authorised("alice", "http", load_settings(APPROVERS="carol"))  # names are per channel
    with pytest.raises(SettingsError, match="NOTIFY_ROUTES"):
        load_settings(NOTIFY_ROUTES="sms=critical")
    with pytest.raises(SettingsError, match="SMTP_TO"):
        load_settings(ENABLE_EMAIL_NOTIFICATIONS=True, SMTP_HOST="mail.example.org")
