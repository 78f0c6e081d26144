"""The bot's handlers: commands, the Approve / Reject / Details buttons, and free text.

Authorisation is by the id of the *user* who sent the message or pressed the button (ADMIN_CHAT_ID or
TELEGRAM_APPROVER_IDS), never by the chat: in a group, a stranger's press is refused and told so. A
stranger is answered once (with their id, so an admin can add it) and logged; after that, ignored.
A decision goes through `IncidentRunner.decide` like every other channel; whatever the gate refuses
(`DecisionRefused`: unknown, already decided, changed, expired, not authorised) becomes one line.
The on-call operations (👀 Ack, 🙋 Take it, /ack, /assign, /comment, /snooze, /close) go through the runner's
lifecycle (service/lifecycle.py), the same state machine as HTTP and the CLI. Decisions and changes are
made as the user's TELEGRAM_APPROVER_IDS name (`alice:111` → alice), else their id.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message, User

from agents.approval import SHORT_HASH, expired, names_plan
from core.models import IncidentReport, utcnow
from core.settings import Settings
from interfaces.telegram import cards, ops, photos, render
from interfaces.telegram.intents import parse
from interfaces.telegram.render import code, esc
from service.refusals import DecisionRefused
from service.runner import IncidentRunner
from store.telegram import TelegramStore

log = logging.getLogger(__name__)


_DURATION = re.compile(r"^(\d{1,4})([mhd])$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}


def snooze_until(text: str, now: datetime | None = None) -> datetime | None:
    """`/snooze`'s UNTIL: a duration from now (30m, 2h, 1d) or an ISO 8601 time with its zone; None when
    it is neither. The bounds (in the future, at most 7 days) are the lifecycle's, as over HTTP."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m:
        return (now or utcnow()) + timedelta(**{_UNIT[m.group(2)]: int(m.group(1))})
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class BotContext:
    settings: Settings
    runner: IncidentRunner
    store: TelegramStore
    outbox: Any | None = None  # interfaces.notify.outbox.Outbox, for /status
    chat: Any | None = None  # graphs.chat.ChatAgent when an LLM is configured
    refused: list[dict[str, Any]] = field(default_factory=list)  # refusals, for the logs and the tests


def is_approver(ctx: BotContext, user: User | None) -> bool:
    """The approval gate every channel uses (the service's `authorised`), for the pressing user."""
    return user is not None and not user.is_bot and ctx.runner.authorised(str(user.id), "telegram")


def _who(user: User) -> str:
    return f"@{user.username}" if user.username else user.full_name


async def _refuse_stranger(ctx: BotContext, message: Message) -> None:
    user = message.from_user
    if user is None:
        return
    first = ctx.store.first_refusal(user.id, user.username)
    log.warning("telegram: refused user %s (%s) in chat %s: not in ADMIN_CHAT_ID/TELEGRAM_APPROVER_IDS%s",
                user.id, _who(user), message.chat.id, "" if first else " (again, not answered)")
    ctx.refused.append({"user": user.id, "chat": message.chat.id, "answered": first})
    if first:
        await message.answer(f"⛔ You are not authorised to use this bot. Your Telegram user id is "
                             f"{code(user.id)}: an admin can add it to TELEGRAM_APPROVER_IDS.")


def build_router(ctx: BotContext) -> Router:  # noqa: C901 - one closure per handler
    router = Router(name="aiops")

    async def guard(message: Message) -> bool:
        if is_approver(ctx, message.from_user):
            return True
        await _refuse_stranger(ctx, message)
        return False

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        if await guard(message):
            user = message.from_user
            assert user is not None
            await message.answer(f"👋 Hello {esc(user.full_name)}: you are an approver (id {code(user.id)}). "
                                 f"You will get incidents and plans here.\n\n{ops.HELP}")

    @router.message(Command("help"))
    async def help_(message: Message) -> None:
        if await guard(message):
            await message.answer(ops.HELP)

    @router.message(Command("status"))
    async def status(message: Message) -> None:
        if await guard(message):
            await message.answer(await ops.status(ctx.runner, ctx.settings, ctx.outbox))

    @router.message(Command("incidents"))
    async def incidents(message: Message) -> None:
        if await guard(message):
            await cards.send_long(message.bot, message.chat.id, ops.incidents(ctx.runner))  # type: ignore[arg-type]

    @router.message(Command("pending"))
    async def pending(message: Message) -> None:
        if await guard(message):
            await show_pending(message, "en")

    @router.message(Command("show"))
    async def show(message: Message, command: CommandObject) -> None:
        if await guard(message):
            await show_incident(message, (command.args or "").strip(), "en")

    @router.message(Command("analyze"))
    async def analyze(message: Message, command: CommandObject) -> None:
        if not await guard(message):
            return
        args = (command.args or "").split()
        if not args:
            await message.answer("usage: /analyze SERVICE [RANGE], e.g. /analyze checkout 2h")
            return
        service, rng = args[0], (args[1] if len(args) > 1 else "1h")
        await message.answer(f"🔎 Investigating {code(service)} over the last {esc(rng)}…")
        try:
            outcome = await ops.analyze(ctx.runner, service, rng)
        except ops.BadRequest as exc:
            await message.answer(f"⚠️ {esc(exc)}")
            return
        if outcome.report.triage.kind == "duplicate":
            await message.answer(f"Already open: {code(outcome.report.triage.duplicate_of)} "
                                 f"(/show {esc(outcome.report.triage.duplicate_of)})")
            return
        await cards.show(message.bot, ctx.store, message.chat.id, outcome.report,  # type: ignore[arg-type]
                         cards.natural_stage(outcome.report))

    @router.message(Command("approve", "reject"))
    async def decide_cmd(message: Message, command: CommandObject) -> None:
        if not await guard(message):
            return
        args = (command.args or "").split()
        if not args or len(args) > 2:
            await message.answer(f"usage: /{command.command} PLAN_ID [HASH] (see /pending)")
            return
        plan_id = args[0]
        row = ctx.runner.plan(plan_id)
        user = message.from_user
        assert user is not None
        if len(args) == 2:  # the short hash the card shows: the runner checks it names the current plan
            plan_hash: str | None = args[1]
        elif row is not None and not any(c.chat_id == message.chat.id for c in ctx.store.cards(row.incident_id)):
            # No hash needed only where this chat was shown the plan's card (what it decides on).
            await message.answer(f"⛔ Refused: this chat was not shown the card of {code(plan_id)}: give the hash "
                                 f"it shows, /{command.command} {esc(plan_id)} HASH (12+ hex digits), or use "
                                 "/pending. Nothing was decided.")
            return
        else:
            plan_hash = row.plan_hash if row else None
        decision = "approve" if command.command == "approve" else "reject"
        async with cards.lock_for(plan_id):
            answer, report = await decide(message.bot, user, plan_id,  # type: ignore[arg-type]
                                          plan_hash, decision)
        await message.answer(answer)
        if report is not None and not any(c.chat_id == message.chat.id for c in ctx.store.cards(report.incident_id)):
            await cards.show(message.bot, ctx.store, message.chat.id, report,  # type: ignore[arg-type]
                             cards.natural_stage(report))

    @router.message(Command("heal"))
    async def heal(message: Message, command: CommandObject) -> None:
        """`/heal` shows the self-healing switch; `/heal on|off` flips it (approvers only, like a decision)."""
        if not await guard(message):
            return
        from service import autonomy

        arg = (command.args or "").strip().lower()
        if arg not in ("", "on", "off"):
            await message.answer("usage: /heal on|off (or /heal to see the switch)")
            return
        if arg:
            user = message.from_user
            if not is_approver(ctx, user):
                await message.answer("Only an approver may switch self-healing on or off.")
                return
            assert user is not None
            await asyncio.to_thread(autonomy.switch, ctx.settings, arg == "on",
                                    f"telegram:{ctx.settings.telegram_name(user.id)}")
        status = await asyncio.to_thread(autonomy.status, ctx.settings)
        await message.answer(ops.heal_line(status))

    # ------------------------------------------------------------------------------ on call --
    async def change(bot: Bot, user: User, incident_id: str, op: str, arg: str = "") -> str:
        """One lifecycle operation as this user; the incident's cards are redrawn. One line back."""
        by = ctx.settings.telegram_name(user.id)
        until = None
        if op == "snooze":
            until = snooze_until(arg)
            if until is None:
                return (f"⛔ {esc(arg[:40])} is not a time: give a duration (30m, 2h, 1d) or an ISO time with its "
                        "zone (2026-01-01T12:00:00Z)")
        try:  # assign's user, comment's text and close's reason are all the rest of the command
            await ctx.runner.change(incident_id, op, by=by, channel="telegram", to=arg, text=arg, until=until)
        except DecisionRefused as exc:
            log.info("telegram: %s by %s on %s refused: %s", op, user.id, incident_id, exc)
            return f"⛔ Refused: {esc(str(exc).strip(chr(39) + chr(34)))}"
        report = await ctx.runner.report(incident_id)
        if report is not None:
            for card in ctx.store.cards(incident_id):
                await cards.show(bot, ctx.store, card.chat_id, report, max(card.stage, cards.natural_stage(report)))
        done = {"ack": "Acknowledged", "assign": f"Assigned to {esc(arg)}:", "comment": "Comment added to",
                "snooze": f"Notifications held until {esc(arg)} for", "close": "Closed"}[op]
        return f"{done} {code(incident_id)} by {esc(by)}"

    @router.message(Command("ack", "assign", "comment", "snooze", "close"))
    async def on_call_cmd(message: Message, command: CommandObject) -> None:
        if not await guard(message):
            return
        op = command.command
        incident_id, _, rest = (command.args or "").strip().partition(" ")
        rest = rest.strip()
        usage = {"ack": "/ack INCIDENT_ID", "assign": "/assign INCIDENT_ID USER",
                 "comment": "/comment INCIDENT_ID TEXT", "snooze": "/snooze INCIDENT_ID UNTIL (2h, 30m, 1d or an ISO "
                 "time with zone)", "close": "/close INCIDENT_ID REASON"}[op]
        if not incident_id or (op != "ack" and not rest) or (op in ("ack", "assign", "snooze") and " " in rest):
            await message.answer(f"usage: {esc(usage)} (see /incidents)")
            return
        user = message.from_user
        assert user is not None
        await message.answer(await change(message.bot, user, incident_id, op, rest))  # type: ignore[arg-type]

    @router.callback_query(cards.IncidentAction.filter())
    async def press_on_call(query: CallbackQuery, callback_data: cards.IncidentAction, bot: Bot) -> None:
        user = query.from_user
        if not is_approver(ctx, user):
            log.warning("telegram: refused press %s on %s by user %s (%s): not an approver", callback_data.action,
                        callback_data.incident_id, user.id, _who(user))
            ctx.refused.append({"user": user.id, "press": callback_data.action})
            await query.answer(f"⛔ {_who(user)} (id {user.id}) is not an approver: only ADMIN_CHAT_ID / "
                               "TELEGRAM_APPROVER_IDS users may change incidents. Nothing was changed.", show_alert=True)
            return
        if callback_data.action not in ("ack", "take"):
            await query.answer("unknown action", show_alert=True)
            return
        op, arg = ("ack", "") if callback_data.action == "ack" else ("assign", ctx.settings.telegram_name(user.id))
        answer = await change(bot, user, callback_data.incident_id, op, arg)
        await query.answer(html.unescape(re.sub(r"<[^>]+>", "", answer))[:200], show_alert=answer.startswith("⛔"))

    @router.callback_query(cards.PlanAction.filter())
    async def press(query: CallbackQuery, callback_data: cards.PlanAction, bot: Bot) -> None:
        user = query.from_user
        chat_id = query.message.chat.id if query.message else None
        if not is_approver(ctx, user):
            log.warning("telegram: refused press %s on %s by user %s (%s) in chat %s: not an approver",
                        callback_data.action, callback_data.plan_id, user.id, _who(user), chat_id)
            ctx.refused.append({"user": user.id, "chat": chat_id, "press": callback_data.action})
            await query.answer(f"⛔ {_who(user)} (id {user.id}) is not an approver: only ADMIN_CHAT_ID / "
                               "TELEGRAM_APPROVER_IDS users may decide. Nothing was changed.", show_alert=True)
            return
        if callback_data.action == "details":
            report = await ctx.runner.plan_report(callback_data.plan_id)
            if report is None or chat_id is None:
                await query.answer("unknown plan", show_alert=True)
                return
            await query.answer()
            await cards.send_long(bot, chat_id, render.details(report))
            return
        if callback_data.action not in ("approve", "reject"):
            await query.answer("unknown action", show_alert=True)
            return
        if not cards.valid_hash(callback_data.hash):  # a button binds a decision to the plan its card showed
            log.warning("telegram: refused press %s on %s by user %s: the button carries no plan hash (%r)",
                        callback_data.action, callback_data.plan_id, user.id, callback_data.hash[:40])
            await query.answer("⛔ Refused: this button carries no plan hash, so it cannot say which version of "
                               "the plan you saw. Nothing was executed: use the buttons of the current card.",
                               show_alert=True)
            return
        lock = cards.lock_for(callback_data.plan_id)
        if lock.locked():
            await query.answer(f"⛔ Refused: a decision on {callback_data.plan_id} is being processed right now "
                               "(another press). Nothing was changed by this one.", show_alert=True)
            return
        async with lock:
            refusal, lapsed = await precheck(callback_data)
            if refusal and not lapsed:
                await query.answer(f"⛔ Refused: {refusal}. Nothing was executed.", show_alert=True)
                return
            row = ctx.runner.plan(callback_data.plan_id)
            full_hash = row.plan_hash if row is not None else None
            if lapsed:  # the gate closes an expired plan (and says why); nothing runs
                await decide(bot, user, callback_data.plan_id, full_hash, callback_data.action)
                await query.answer(f"⛔ Refused: {refusal}. Nothing was executed.", show_alert=True)
                return
            await query.answer(f"{'Approving' if callback_data.action == 'approve' else 'Rejecting'} "
                               f"{callback_data.plan_id}…")
            answer, report = await decide(bot, user, callback_data.plan_id, full_hash, callback_data.action,
                                          pressed=(chat_id, query.message.message_id if query.message else None))
        if chat_id is not None and (report is None or report.approval is None or not report.approval.valid):
            await bot.send_message(chat_id, answer)  # refused after all (another process decided): say so

    @router.callback_query()
    async def unknown_press(query: CallbackQuery) -> None:
        """Callback data that is not one of our buttons (forged, or from an older version): refused, and
        answered, so the client does not spin."""
        log.warning("telegram: refused a press with unrecognised callback data from user %s", query.from_user.id)
        await query.answer("⛔ Refused: this button is not one aiops sent (unrecognised data). Nothing was changed.",
                           show_alert=True)

    async def precheck(data: cards.PlanAction) -> tuple[str | None, bool]:
        """Why a press cannot count, before anything is consumed: (reason, is-it-expiry)."""
        row = ctx.runner.plan(data.plan_id)
        if row is None:
            return f"unknown plan {data.plan_id}", False
        report = await ctx.runner.report(row.incident_id)
        if row.status != "awaiting_approval" or report is None or report.plan is None:
            who = ""
            if report is not None and report.approval is not None:
                a = report.approval
                who = f": already {'approved' if a.decision == 'approve' else 'rejected'} by {a.approver} " \
                      f"via {a.channel} at {a.decided_at:%H:%M:%S} UTC"
            return f"plan {data.plan_id} is no longer awaiting approval (incident {row.status}){who}", False
        if not names_plan(data.hash, report.plan.content_hash, prefix=True) or report.plan.id != data.plan_id:
            return (f"plan {data.plan_id} changed since this message was sent (its content hash is now "
                    f"{report.plan.content_hash[:SHORT_HASH]}, the button was for {data.hash[:SHORT_HASH]})"), False
        if expired(report.plan):
            return f"the approval window of {data.plan_id} expired at {report.plan.expires_at:%Y-%m-%d %H:%M:%S} UTC", True
        return None, False

    async def decide(bot: Bot, user: User, plan_id: str, plan_hash: str | None, decision: str,
                     pressed: tuple[int | None, int | None] = (None, None)) -> tuple[str, IncidentReport | None]:
        """Run the decision through the gate; edit every card of the incident with the result.
        The caller holds `cards.lock_for(plan_id)`."""
        row = ctx.runner.plan(plan_id)
        if row is not None and pressed[0] is not None and pressed[1] is not None:
            # the pressed message shows "working" at once; execution and verification can take a while
            report = await ctx.runner.report(row.incident_id)
            if report is not None and report.status.value == "awaiting_approval":
                note = f"⏳ {'approved' if decision == 'approve' else 'rejected'} by {esc(_who(user))}, working…"
                await cards.edit(bot, pressed[0], pressed[1], cards.card_text(report, note), None)
        try:
            outcome = await ctx.runner.decide(plan_id, approver=ctx.settings.telegram_name(user.id), decision=decision,
                                              channel="telegram", plan_hash=plan_hash,
                                              comment=f"telegram {_who(user)}")
        except DecisionRefused as exc:
            log.info("telegram: decision by %s on %s refused: %s", user.id, plan_id, exc)
            text = f"⛔ Refused: {esc(str(exc).strip(chr(39) + chr(34)))}"
            if row is not None and pressed[0] is not None and pressed[1] is not None:
                current = await ctx.runner.report(row.incident_id)
                if current is not None:
                    await cards.show(bot, ctx.store, pressed[0], current, cards.natural_stage(current))
            return text, None
        report = outcome.report
        for card in ctx.store.cards(report.incident_id):
            await cards.show(bot, ctx.store, card.chat_id, report, cards.natural_stage(report))
        if pressed[0] is not None and pressed[1] is not None and not ctx.store.card_at(pressed[0], pressed[1]):
            await cards.edit(bot, pressed[0], pressed[1], cards.card_text(report), cards.buttons(report))
        a = report.approval
        if a is not None and not a.valid:
            return f"⛔ Refused: {esc(a.reason)}. Nothing was executed.", report
        verb = "Approved" if decision == "approve" else "Rejected"
        result = f" · {esc(report.status.value)}"
        return f"{verb} {code(plan_id)} ({code(report.incident_id)}){result}", report

    async def show_pending(message: Message, lang: ops.Lang) -> None:
        rows = ops.pending_rows(ctx.runner)
        if not rows:
            await message.answer(ops.TEXT["pending_none"][lang])
            return
        await message.answer(f"<b>{esc(ops.TEXT['pending_head'][lang])}</b>: {len(rows)}")
        for row in rows[:5]:
            report = await ctx.runner.report(row.incident_id)
            if report is not None:
                await cards.show(message.bot, ctx.store, message.chat.id, report,  # type: ignore[arg-type]
                                 cards.STAGES["plan_awaiting_approval"], new_message=True)

    async def show_incident(message: Message, incident_id: str, lang: ops.Lang) -> None:
        if not incident_id:
            await message.answer("usage: /show INCIDENT_ID (see /incidents)")
            return
        report = await ctx.runner.report(incident_id)
        if report is None:
            await message.answer(ops.t("unknown_incident", lang, id=incident_id))
            return
        await photos.send_top_chart(message.bot, message.chat.id, report)  # type: ignore[arg-type]
        await cards.send_long(message.bot, message.chat.id, render.details(report),  # type: ignore[arg-type]
                              cards.buttons(report))

    @router.message(F.text)
    async def text(message: Message, bot: Bot) -> None:
        body = message.text or ""
        if message.chat.type in ("group", "supergroup"):
            # In a group people talk to each other: answer only what is addressed to the bot.
            me = await bot.me()
            mention = f"@{me.username}".lower() if me.username else None
            replied = message.reply_to_message is not None and message.reply_to_message.from_user is not None \
                and message.reply_to_message.from_user.id == me.id
            if not replied and not (mention and mention in body.lower()):
                return
            if mention:
                body = re.sub(re.escape(mention), "", body, flags=re.I).strip()
        if not await guard(message):
            return
        if body.startswith("/"):
            await message.answer("Unknown command. /help lists them.")
            return
        if ctx.chat is not None:
            try:
                answer = await ctx.chat.answer(body)
            except Exception as exc:  # the LLM is down: the deterministic parser still answers
                log.warning("telegram: chat agent failed (%s); falling back to the intent parser", exc)
            else:
                if answer:  # the model's words are untrusted: shown as text, never as markup
                    await cards.send_long(message.bot, message.chat.id, esc(answer))  # type: ignore[arg-type]
                    return
        intent = parse(body)
        lang = intent.lang
        if intent.kind == "decision":
            await message.answer(ops.t("no_decision", lang))
        elif intent.kind == "pending":
            await show_pending(message, lang)
        elif intent.kind == "incidents":
            await cards.send_long(message.bot, message.chat.id, ops.incidents(ctx.runner, lang))  # type: ignore[arg-type]
        elif intent.kind == "status":
            await message.answer(await ops.status(ctx.runner, ctx.settings, ctx.outbox))
        elif intent.kind == "help":
            await message.answer(ops.HELP)
        elif intent.kind == "show" and intent.incident_id:
            await show_incident(message, intent.incident_id, lang)
        elif intent.kind == "plan" and intent.plan_id:
            report = await ctx.runner.plan_report(intent.plan_id)
            if report is None:
                await message.answer(ops.t("unknown_plan", lang, id=intent.plan_id))
            else:  # free text at most *shows* the plan with its buttons
                await cards.show(message.bot, ctx.store, message.chat.id, report,  # type: ignore[arg-type]
                                 cards.STAGES["plan_awaiting_approval"], new_message=True)
        elif intent.kind == "analyze" and intent.service:
            await message.answer(ops.t("investigating", lang, svc=intent.service, rng=intent.time_range))
            try:
                answer = await ops.look(ctx.runner, intent.service, intent.time_range, lang)
            except ops.BadRequest as exc:
                answer = f"⚠️ {esc(exc)}"
            await cards.send_long(message.bot, message.chat.id, answer)  # type: ignore[arg-type]
        else:
            await message.answer(ops.t("not_understood", lang))

    return router
