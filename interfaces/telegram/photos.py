"""Evidence charts in chats: the card's chart, the verification chart, and Telegram's limits on both.

A card goes out with the chart of its top evidence: as one photo with the card as its caption when the
card fits in a caption (1,024 characters after entity parsing), else as the photo (with a one-line
caption) followed by the card as a message. Later edits of a photo card change its caption; a caption
that outgrew the limit keeps its head (title, id, reason) and its tail (decision, execution,
verification) and says where the rest is. Photos are checked against sendPhoto's limits before they
are sent (10 MB, width + height <= 10,000, sides at most 20:1): a chart that broke them would be
dropped (logged) and the card sent alone, never the card lost.
"""

from __future__ import annotations

import asyncio
import html
import logging
import struct

from aiogram import Bot
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message

from core.models import Evidence, IncidentReport
from interfaces import charts
from interfaces.telegram.render import _short, _strip_tags, code, esc

log = logging.getLogger(__name__)
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_RATIO = 20
_CUT = "<i>… cut to fit under the chart: /show {id} for the full report</i>"


def visible_length(text: str) -> int:
    """The length Telegram counts: UTF-16 code units of the text after entity parsing."""
    return len(html.unescape(_strip_tags(text)).encode("utf-16-le")) // 2


def fits_caption(text: str) -> bool:
    return visible_length(text) <= MAX_CAPTION


def caption(text: str, incident_id: str) -> str:
    """`text` as a caption: unchanged when it fits, else its first three lines, a note, and as many of
    its last lines as fit (lines keep their tags closed, so cutting between them keeps the HTML valid)."""
    if fits_caption(text):
        return text
    lines = text.split("\n")
    head, note = lines[:3], _CUT.format(id=esc(incident_id))
    budget = MAX_CAPTION - visible_length("\n".join([*head, note])) - 1
    tail: list[str] = []
    for line in reversed(lines[3:]):
        cost = visible_length(line) + 1
        if cost > budget:
            break
        tail.insert(0, line)
        budget -= cost
    out = "\n".join([*head, note, *tail])
    return out if fits_caption(out) else "\n".join([esc(_short(html.unescape(_strip_tags(lines[0])), 900)), note])


def photo_ok(data: bytes) -> bool:
    """Within sendPhoto's limits: size, and the PNG's dimensions (charts are PNGs)."""
    if len(data) > MAX_PHOTO_BYTES or data[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    w, h = struct.unpack(">II", data[16:24])
    return 0 < w and 0 < h and w + h <= MAX_PHOTO_SIDES and max(w, h) <= MAX_PHOTO_RATIO * min(w, h)


async def chart(report: IncidentReport, ev: Evidence | None) -> bytes | None:
    """The PNG of `ev` (drawn off the event loop), or None when there is none or it breaks the limits."""
    if ev is None:
        return None
    data = await asyncio.to_thread(charts.render, report, ev.id, "png")
    if data is not None and not photo_ok(data):
        log.error("telegram: chart of %s/%s breaks the photo limits (%d bytes); sent without it",
                  report.incident_id, ev.id, len(data))
        return None
    return data


def chart_caption(report: IncidentReport, ev: Evidence, what: str = "📈") -> str:
    """One short caption naming the incident and the evidence the chart shows."""
    text = f"{what} {code(report.incident_id)} {code(ev.id)} [{esc(ev.tool)}] {esc(_short(ev.excerpt, 300))}"
    return caption(text, report.incident_id)


async def send_chart(bot: Bot, chat_id: int, report: IncidentReport, ev: Evidence, text: str, png: bytes,
                     markup: InlineKeyboardMarkup | None = None) -> Message:
    return await bot.send_photo(chat_id, BufferedInputFile(png, filename=f"{report.incident_id}-{ev.id}.png"),
                                caption=text, reply_markup=markup)


async def send_verification(bot: Bot, chat_id: int, report: IncidentReport) -> bool:
    """The chart of the metric re-read after the fix, with the verdict; False when there is none."""
    ev = charts.verified_evidence(report)
    png = await chart(report, ev)
    if ev is None or png is None:
        return False
    v = report.verification
    verdict = {True: "✅ recovered", False: "🔥 NOT recovered", None: "not verified"}[v.recovered if v else None]
    check = charts.check_for(report, ev.id)
    note = check.note if check else ""
    text = caption(f"📉 <b>Verification</b> {code(report.incident_id)}: {esc(verdict)}\n"
                   f"{code(ev.id)} {esc(_short(ev.query, 200))}\n{esc(_short(note, 300))}", report.incident_id)
    await send_chart(bot, chat_id, report, ev, text, png)
    return True


async def send_top_chart(bot: Bot, chat_id: int, report: IncidentReport) -> bool:
    """The top evidence's chart as its own photo (/show); False when the report has no chart."""
    ev = charts.top_evidence(report)
    png = await chart(report, ev)
    if ev is None or png is None:
        return False
    await send_chart(bot, chat_id, report, ev, chart_caption(report, ev), png)
    return True
