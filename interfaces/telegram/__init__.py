"""The Telegram bot (aiogram 3): incident cards with Approve / Reject / Details, commands, and questions
in plain language. `bot.TelegramBot` runs it; `aiops bot` and `aiops serve` start it."""
