"""Charts in Telegram, through the real aiogram client against the Bot API simulator: a card that fits
a caption is one photo, edited in place as its caption (cut to fit, its outcome kept); a longer card is
the photo and then the card; the simulator holds aiogram to sendPhoto's limits like the real server."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile

from core.models import Approval, Hypothesis, IncidentStatus
from core.settings import load_settings
from interfaces.telegram import cards, photos
from interfaces.telegram.client import make_bot
from store.telegram import TelegramStore
from tests.sim.telegram import TelegramSim, telegram_sim
from tests.unit.test_charts import report

pytestmark = pytest.mark.e2e
CHAT = 111


def png(width: int, height: int) -> bytes:
    """A real (tiny-data) PNG of the given dimensions."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def sim() -> Any:
    with telegram_sim() as s:
        s.chats[CHAT] = {"id": CHAT, "type": "private", "first_name": "Alice"}
        yield s


def run(sim: TelegramSim, tmp_path: Path, scenario: Any) -> Any:
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", TELEGRAM_TOKEN=sim.token, TELEGRAM_API_URL=sim.url)

    async def main() -> Any:
        bot = make_bot(settings)
        try:
            return await scenario(bot, TelegramStore(tmp_path / "tg.sqlite"))
        finally:
            await bot.session.close()
    return asyncio.run(main())


def test_a_short_card_is_the_charts_caption_and_is_edited_as_one(sim: TelegramSim, tmp_path: Path) -> None:
    short = report()
    short.hypotheses = short.hypotheses[:1]
    grown = report(verified=True)
    grown.status = IncidentStatus.RESOLVED
    grown.approval = Approval(plan_id="plan-1", plan_hash="0" * 64, approver="alice", decision="approve",
                              channel="telegram")
    grown.hypotheses = [Hypothesis(component=f"component-{i}", cause="x" * 290, confidence=0.1,
                                   evidence_ids=["ev-3", "ev-2"]) for i in range(3)]

    async def scenario(bot: Any, store: TelegramStore) -> Any:
        mid = await cards.show(bot, store, CHAT, short, cards.STAGES["incident_opened"])
        first = (store.cards(short.incident_id)[0], [m.text for m in sim.chat_log(CHAT)])
        await cards.show(bot, store, CHAT, grown, cards.STAGES["verified"])
        return mid, first

    mid, (card, texts) = run(sim, tmp_path, scenario)
    (photo,) = sim.chat_log(CHAT)  # one message: the chart, the card its caption
    assert photo.message_id == mid and card.photo and photo.photo_size == (880, 374)
    assert texts[0].startswith("🚨 HighCpu") and "Diagnosis" in texts[0]
    assert [c.method for c in sim.calls if c.method != "getMe"] == ["sendPhoto", "editMessageCaption"]
    # the grown card no longer fits: head and outcome kept, the middle cut, within the limit
    assert photo.edits == 1 and len(photo.text) <= 1024
    assert photo.text.startswith("🚨 HighCpu") and "cut to fit under the chart: /show inc-1" in photo.text
    assert "Approved by alice via telegram" in photo.text and photo.text.rstrip().endswith("status resolved")


def test_a_long_card_follows_its_chart_and_the_limits_hold(sim: TelegramSim, tmp_path: Path) -> None:
    long = report()
    long.hypotheses = [Hypothesis(component=f"c{i}", cause="y" * 290, confidence=0.2, evidence_ids=["ev-3"])
                       for i in range(3)] * 2

    async def scenario(bot: Any, store: TelegramStore) -> dict[str, str]:
        await cards.show(bot, store, CHAT, long, cards.STAGES["incident_opened"])
        refused: dict[str, str] = {}
        for name, data, caption in [("too long caption", png(800, 400), "z" * 1025),
                                    ("sides", png(9000, 1001), ""), ("ratio", png(2100, 100), ""),
                                    ("not an image", b"GIF89a" + b"\x00" * 64, "")]:
            try:
                await bot.send_photo(CHAT, BufferedInputFile(data, "x.png"), caption=caption or None)
            except TelegramBadRequest as exc:
                refused[name] = exc.message
        chart, text = sim.chat_log(CHAT)[:2]
        try:  # a text edit of a photo is refused by Telegram; cards.edit falls back to the caption
            await bot.edit_message_text("x", chat_id=CHAT, message_id=chart.message_id)
        except TelegramBadRequest as exc:
            refused["text edit of a photo"] = exc.message
        await cards.edit(bot, CHAT, chart.message_id, "🚨 <b>edited</b>", None, incident_id="inc-1")
        return refused

    refused = run(sim, tmp_path, scenario)
    chart, card = sim.chat_log(CHAT)[:2]
    assert chart.photo is not None and card.photo is None and len(card.text) > 1024
    assert chart.text == "🚨 edited" and chart.edits == 1
    # an opened card has no plan to decide yet: only the on-call buttons, on the card (the text), not the chart
    assert chart.buttons() == [] and "c0" in card.text
    assert [b["callback_data"] for b in card.buttons()] == ["inc:ack:inc-1", "inc:take:inc-1"]
    assert refused == {"too long caption": "Bad Request: message caption is too long",
                       "sides": "Bad Request: PHOTO_INVALID_DIMENSIONS", "ratio": "Bad Request: PHOTO_INVALID_DIMENSIONS",
                       "not an image": "Bad Request: IMAGE_PROCESS_FAILED",
                       "text edit of a photo": "Bad Request: there is no text in the message to edit"}
    assert photos.photo_ok(png(880, 374)) and not photos.photo_ok(png(2100, 100))
    assert not photos.photo_ok(png(9000, 1001)) and not photos.photo_ok(b"\x89PNG" + b"\x00" * (11 << 20))
