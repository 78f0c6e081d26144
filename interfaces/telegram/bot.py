"""`aiops bot`: the Telegram bot, long polling (aiogram 3).

On start it drops any webhook (polling and a webhook exclude each other), registers the commands with
setMyCommands, and polls getUpdates. `aiops bot` (interfaces/cli.py) runs it with the notification
outbox in the same process, so incident cards reach the admins and are edited as the incident moves
on; `aiops serve` (interfaces/api/app.py) embeds `TelegramBot` the same way when TELEGRAM_TOKEN is set.
The bot knows nothing of the outbox but the object it is handed (for /status): the notification
channels draw this folder's cards, not the other way round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.types import BotCommand

from core.settings import Settings
from interfaces.telegram import ops
from interfaces.telegram.client import make_bot
from interfaces.telegram.handlers import BotContext, build_router
from service.runner import IncidentRunner
from store.telegram import telegram_store

log = logging.getLogger(__name__)


class BotSetupError(RuntimeError):
    """Telegram refused the bot itself (a wrong token): retrying cannot help. One line for the user."""


class TelegramBot:
    def __init__(self, settings: Settings, runner: IncidentRunner, *, outbox: Any | None = None,
                 chat: Any | None = None, bot: Bot | None = None) -> None:
        self.settings = settings
        self.bot = bot or make_bot(settings)
        self.ctx = BotContext(settings=settings, runner=runner, store=telegram_store(settings), outbox=outbox,
                              chat=chat)
        self.dp = Dispatcher()
        self.dp.include_router(build_router(self.ctx))
        self.started = asyncio.Event()

    async def setup(self) -> None:
        """getMe, deleteWebhook, setMyCommands. A Bot API that is down is waited for (with backoff, like
        polling itself); a token Telegram refuses is a `BotSetupError`."""
        delay = 1.0
        while True:
            try:
                me = await self.bot.get_me()
                await self.bot.delete_webhook(drop_pending_updates=False)
                await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in ops.COMMANDS])
                break
            except TelegramUnauthorizedError:
                raise BotSetupError("Telegram refused TELEGRAM_TOKEN (401 Unauthorized): copy the token from "
                                    "@BotFather again") from None
            except (TelegramNetworkError, TelegramServerError) as exc:
                log.warning("telegram: Bot API at %s unavailable (%s); retrying in %.0f s",
                            self.settings.TELEGRAM_API_URL, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        if not self.settings.admin_chat_ids:
            log.warning("telegram: ADMIN_CHAT_ID / TELEGRAM_APPROVER_IDS are empty: every user will be refused")
        log.info("telegram: @%s polling %s", me.username, self.settings.TELEGRAM_API_URL)

    async def run(self, *, handle_signals: bool = False) -> None:
        try:
            await self.setup()
        except BaseException:
            await self.bot.session.close()
            raise
        self.started.set()
        await self.dp.start_polling(self.bot, polling_timeout=self.settings.TELEGRAM_POLL_TIMEOUT,
                                    handle_signals=handle_signals, close_bot_session=True)

    async def stop(self) -> None:
        try:
            await self.dp.stop_polling()
        except RuntimeError:  # not polling (yet)
            await self.bot.session.close()
