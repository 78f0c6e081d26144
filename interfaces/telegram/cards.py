"""Incident cards in chats: send one, edit it in place as the incident moves on, attach the buttons.

An incident has at most one card per chat (remembered in `TelegramStore`). It goes with the chart of
the top evidence (`photos`: the card as the photo's caption when it fits, else the next message).
The notifier sends it when the incident opens, the bot edits it after a press, and later events edit it again with the execution
and verification result. The buttons carry the plan id and the first 16 hex digits of the plan's
content hash (callback data is limited to 64 bytes): a press on a card whose plan has since changed
names a hash the plan no longer has, and is refused.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from agents.approval import short_hash_ok
from core.models import IncidentReport
from interfaces import charts
from interfaces.telegram import photos, render
from store.telegram import TelegramStore

log = logging.getLogger(__name__)
HASH_PREFIX = 16

# The order in which a card may change: a late retry of an earlier stage never overwrites a later one.
STAGES = {"incident_opened": 0, "plan_awaiting_approval": 1, "decision": 2, "auto_fix_applied": 2,
          "executed": 3, "verified": 4, "not_recovered": 4, "escalation": 5, "closed": 6}
_locks: dict[str, asyncio.Lock] = {}


class PlanAction(CallbackData, prefix="plan"):
    action: str  # "approve" | "reject" | "details"
    plan_id: str
    hash: str  # the first HASH_PREFIX hex digits of the plan's content hash (see valid_hash)


class IncidentAction(CallbackData, prefix="inc"):
    """The on-call buttons of a card: acknowledge it, take it (assign it to the presser)."""

    action: str  # "ack" | "take"
    incident_id: str


ON_CALL_DONE = ("closed", "resolved", "duplicate")  # no on-call buttons on these


def valid_hash(value: str) -> bool:
    """A button's hash names a plan version: exactly HASH_PREFIX lowercase hex digits. Anything shorter
    (empty) would match every version by prefix, so a decision could not be bound to what was seen."""
    return len(value) == HASH_PREFIX and short_hash_ok(value)


def natural_stage(report: IncidentReport) -> int:
    """The stage a report shows, from what happened to it (for edits that are not tied to one event)."""
    if report.verification is not None and report.executions:
        return STAGES["verified"]
    if report.executions:
        return STAGES["executed"]
    if report.approval is not None:
        return STAGES["decision"]
    return STAGES["plan_awaiting_approval"] if report.plan else STAGES["incident_opened"]


def lock_for(key: str) -> asyncio.Lock:
    """One lock per incident/plan in this process: two presses on one plan are handled one after the other."""
    return _locks.setdefault(key, asyncio.Lock())


def buttons(report: IncidentReport) -> InlineKeyboardMarkup | None:
    rows = []
    plan = report.plan
    if plan is not None:
        h = plan.content_hash[:HASH_PREFIX]
        details = InlineKeyboardButton(text="🔎 Details",
                                       callback_data=PlanAction(action="details", plan_id=plan.id, hash=h).pack())
        if report.status.value != "awaiting_approval":
            rows.append([details])
        else:
            rows.append([
                InlineKeyboardButton(text="✅ Approve",
                                     callback_data=PlanAction(action="approve", plan_id=plan.id, hash=h).pack()),
                InlineKeyboardButton(text="❌ Reject",
                                     callback_data=PlanAction(action="reject", plan_id=plan.id, hash=h).pack()),
                details])
    if report.status.value not in ON_CALL_DONE:  # who is on it (closing needs a reason: /close ID REASON)
        on_call = [] if report.on_call.acknowledged_by else [InlineKeyboardButton(
            text="👀 Ack", callback_data=IncidentAction(action="ack", incident_id=report.incident_id).pack())]
        on_call.append(InlineKeyboardButton(
            text="🙋 Take it", callback_data=IncidentAction(action="take", incident_id=report.incident_id).pack()))
        rows.append(on_call)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def card_text(report: IncidentReport, note: str | None = None) -> str:
    text = render.incident_card(report, pending=report.status.value == "awaiting_approval")
    if note:
        text += "\n" + note
    parts = render.split(text)
    if len(parts) > 1:  # a card is one message: keep its head and say where the rest is
        text = render.split(text, render.MAX_MESSAGE - 80)[0] + f"\n… (full report: /show {report.incident_id})"
    return text


async def edit(bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None, *,
               photo: bool | None = None, incident_id: str = "") -> None:
    """Edit a card in place: its text, or its caption when it is a chart (`photo`; None: not known, try
    the text first, as the press of a button on a card this store did not send)."""
    try:
        if photo:
            await bot.edit_message_caption(caption=photos.caption(text, incident_id), chat_id=chat_id,
                                           message_id=message_id, reply_markup=markup)
        else:
            await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup)
    except TelegramBadRequest as exc:
        if photo is None and "there is no text in the message to edit" in exc.message:
            await edit(bot, chat_id, message_id, text, markup, photo=True, incident_id=incident_id)
        elif "message is not modified" not in exc.message:
            raise


async def show(bot: Bot, store: TelegramStore, chat_id: int, report: IncidentReport, stage: int,
               note: str | None = None, *, new_message: bool = False) -> int:
    """Create or update this incident's card in `chat_id`; returns its message id.

    `stage` only moves forward: asked to show an older stage than the card has, it leaves the card alone.
    """
    async with lock_for(report.incident_id):
        text, markup = card_text(report, note), buttons(report)
        existing = next((c for c in store.cards(report.incident_id) if c.chat_id == chat_id), None)
        if existing and not new_message:
            if not store.advance(report.incident_id, chat_id, stage):
                return existing.message_id
            try:
                await edit(bot, chat_id, existing.message_id, text, markup, photo=existing.photo,
                           incident_id=report.incident_id)
                return existing.message_id
            except TelegramBadRequest as exc:
                if "message to edit not found" not in exc.message:
                    raise
                log.info("telegram: card %s in chat %s is gone; sending a new one", existing.message_id, chat_id)
        ev = charts.top_evidence(report)
        png = await photos.chart(report, ev)
        if ev is not None and png is not None and photos.fits_caption(text):  # one photo, the card its caption
            msg = await photos.send_chart(bot, chat_id, report, ev, text, png, markup)
        else:
            if ev is not None and png is not None:  # the chart, then the card as the next message
                await photos.send_chart(bot, chat_id, report, ev, photos.chart_caption(report, ev), png)
            msg = await bot.send_message(chat_id, text, reply_markup=markup)
        store.save_card(report.incident_id, chat_id, msg.message_id, stage, photo=msg.photo is not None)
        return msg.message_id


async def send_long(bot: Bot, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Send `text` in as many messages as the 4,096-character limit needs (buttons on the last)."""
    parts = render.split(text)
    for i, part in enumerate(parts):
        await bot.send_message(chat_id, part, reply_markup=markup if i == len(parts) - 1 else None)
