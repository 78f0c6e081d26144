"""The aiogram `Bot` for our settings: API server, HTML parse mode, and Telegram's rate limits.

`TELEGRAM_API_URL` points aiogram at a local Bot API server (or the tests' simulator). Telegram answers
429 with `retry_after` when a bot sends too fast; the middleware sleeps exactly that long and retries
(a few times), so a burst of notifications slows down instead of being lost.

Every Bot API request except `getUpdates` (the polling loop in bot.py has its own back-off) goes
through the breaker "notify-telegram" (core.resilience), once per attempt and never retried by it (a
repeated sendMessage is a duplicate message): connection errors, timeouts and 5xx are charged; a
4xx is Telegram answering (a chat that refuses, a bad request, a 429) and is not. While it is open,
sends fail at once with `CircuitOpenError`; the outbox keeps the cards queued until it closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.default import Default, DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import AnswerCallbackQuery, EditMessageText, GetUpdates, SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType

from core.resilience import guarded
from core.settings import Settings
from interfaces.telegram import render

BREAKER = "notify-telegram"

log = logging.getLogger(__name__)


class RetryAfter(BaseRequestMiddleware):
    """Honour 429 `retry_after`: wait as told, then resend (at most `attempts` times, each wait capped)."""

    def __init__(self, attempts: int = 5, max_wait: float = 60.0) -> None:
        self.attempts = attempts
        self.max_wait = max_wait
        self.waited: list[float] = []  # what we slept, for the logs and the tests

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        for attempt in range(self.attempts):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts - 1 or isinstance(method, GetUpdates) or exc.retry_after > self.max_wait:
                    raise
                log.warning("telegram: 429 on %s, retrying after %s s", type(method).__name__, exc.retry_after)
                self.waited.append(float(exc.retry_after))
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")


CALLBACK_ANSWER_MAX = 200  # answerCallbackQuery's text limit


class FitToLimits(BaseRequestMiddleware):
    """Every text the bot sends fits Telegram's limits, whichever handler wrote it.

    The Bot API refuses a message over 4,096 characters ("message is too long") and a button answer
    over 200: the reply would be lost, with a traceback in the log. Here a long `sendMessage` becomes
    several messages cut between lines (`render.split`; the buttons on the last, the reply on the
    first), an `editMessageText` keeps its head and says it was cut, and a button answer is cut.
    """

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        send: Any = make_request  # the narrowed methods below are still requests of the same type
        if isinstance(method, SendMessage | EditMessageText) and render.units(method.text or "") > render.MAX_MESSAGE:
            text = method.text or ""
            markup = _html(method.parse_mode)
            if isinstance(method, EditMessageText):  # one message: its head, marked
                head = render.split(text, render.MAX_MESSAGE - 40, markup=markup)[0]
                return await send(bot, method.model_copy(update={"text": f"{head}\n… (cut)"}))  # type: ignore[no-any-return]
            parts = render.split(text, markup=markup)
            log.info("telegram: a %d-character message sent as %d messages", len(text), len(parts))
            for i, part in enumerate(parts[:-1]):
                first = {} if i == 0 else {"reply_parameters": None, "reply_to_message_id": None}
                await send(bot, method.model_copy(update={"text": part, "reply_markup": None, **first}))
            return await send(bot, method.model_copy(update={  # type: ignore[no-any-return]
                "text": parts[-1], "reply_parameters": None, "reply_to_message_id": None}))
        if isinstance(method, AnswerCallbackQuery) and method.text and len(method.text) > CALLBACK_ANSWER_MAX:
            return await send(bot, method.model_copy(update={  # type: ignore[no-any-return]
                "text": method.text[:CALLBACK_ANSWER_MAX - 1] + "…"}))
        return await make_request(bot, method)


def _html(parse_mode: Any) -> bool:
    """The bot's default parse mode is HTML (make_bot); an explicit other mode is not."""
    return isinstance(parse_mode, Default) or str(parse_mode).upper() == "HTML"


def charged(exc: BaseException) -> bool:
    """Telegram's fault (down, timing out, 5xx), not an answer from a healthy Bot API (4xx, 429)."""
    return isinstance(exc, TelegramNetworkError | TelegramServerError) or not isinstance(exc, TelegramAPIError)


class Breaker(BaseRequestMiddleware):
    """Each Bot API request (not getUpdates) through the "notify-telegram" breaker, one attempt."""

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if isinstance(method, GetUpdates):  # polling: bot.py backs off on its own
            return await make_request(bot, method)  # type: ignore[arg-type]  # narrowed by isinstance
        return await guarded(BREAKER, lambda: make_request(bot, method), idempotent=False, counts=charged)


def make_bot(settings: Settings, **session_kw: Any) -> Bot:
    if not settings.TELEGRAM_TOKEN:
        raise ValueError("TELEGRAM_TOKEN is not set (create a bot with @BotFather and put its token there)")
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_URL), **session_kw)
    session.middleware(FitToLimits())  # outermost: a long text becomes several requests, each ...
    session.middleware(RetryAfter())  # ... with a 429's wait-and-resend ...
    session.middleware(Breaker())  # ... around the breaker, so each attempt is one breaker call
    return Bot(settings.TELEGRAM_TOKEN, session=session,
               default=DefaultBotProperties(parse_mode="HTML", link_preview_is_disabled=True))
