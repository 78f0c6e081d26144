"""A conversation with the bot against the Bot API simulator, printed as a chat transcript.

    PYTHONPATH=. python scripts/telegram_sim_demo.py

It starts `tests/sim/telegram.py` on a loopback port, runs the real bot (aiogram, long polling) and the
notification outbox on a temporary data dir, replays the bundled crash-loop incident as if Alertmanager
had sent it, and plays an admin (and a stranger) talking to the bot. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import load_settings  # noqa: E402
from interfaces.notify.outbox import Outbox  # noqa: E402
from interfaces.telegram.bot import TelegramBot  # noqa: E402
from service.runner import IncidentRunner  # noqa: E402
from service.toolbox_factory import make_toolbox_factory, replay_spec  # noqa: E402
from tests.sim.telegram import SentMessage, TelegramSim, telegram_sim  # noqa: E402
from tools.replay.recording import load_recorded  # noqa: E402

ADMIN, STRANGER = 111, 999
RECORDING = Path(__file__).resolve().parents[1] / "tools" / "replay" / "incidents" / "crashloop.json"


def show(who: str, text: str) -> None:
    lines = text.splitlines() or [""]
    print(f"{who:>8} │ {lines[0]}")
    for line in lines[1:]:
        print(f"{'':>8} │ {line}")
    print(f"{'':>8} │")


async def main(sim: TelegramSim, data: Path) -> None:
    settings = load_settings(AIOPS_DATA_DIR=data, VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False, LLM_MODE="rules",
                             TELEGRAM_TOKEN=sim.token, TELEGRAM_API_URL=sim.url, ADMIN_CHAT_ID=str(ADMIN),
                             TELEGRAM_POLL_TIMEOUT=1)
    admin, stranger = sim.user(ADMIN, "Alice", "alice"), sim.user(STRANGER, "Mallory", "mallory")
    seen = 0

    async def say(user: dict, text: str, wait_for: int = 1) -> None:
        nonlocal seen
        show(f"@{user.get('username')}", text)
        sim.send_text(user, text)
        await replies(wait_for, user["id"])

    async def replies(n: int, chat: int = ADMIN) -> list[SentMessage]:
        nonlocal seen
        if chat != ADMIN:
            await sim.until(lambda: sim.messages.get(chat), 30)
            for m in sim.messages[chat]:
                show("bot", m.text)
            return sim.messages[chat]
        await sim.until(lambda: len(sim.messages.get(ADMIN, [])) >= seen + n, 60)
        await asyncio.sleep(0.5)
        new = sim.messages[ADMIN][seen:]
        seen = len(sim.messages[ADMIN])
        for m in new:
            buttons = "  ".join(f"[{b['text']}]" for b in m.buttons())
            show("bot", m.text + (f"\n{buttons}" if buttons else ""))
        return new

    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        outbox = Outbox.from_settings(settings)
        outbox.attach(runner)
        bot = TelegramBot(settings, runner, outbox=outbox)
        tasks = [asyncio.create_task(bot.run()), asyncio.create_task(outbox.run())]
        await bot.started.wait()
        await say(admin, "/start")
        await say(stranger, "/pending")
        show("", "(Alertmanager posts ServiceCrashLooping for payments-api)")
        rec = load_recorded(RECORDING)
        await runner.analyze(rec.webhook, replay_spec(RECORDING, settings))
        card = (await replies(1))[0]
        await say(admin, "что с payments-api?", wait_for=2)
        await say(admin, "approve it")
        show("@alice", "(presses ✅ Approve under the card)")
        approve = next(b["callback_data"] for b in card.buttons() if b["callback_data"].startswith("plan:approve"))
        qid = sim.press(admin, card, approve)
        await sim.until(lambda: "Verify" in card.text, 60)
        show("bot", f"(answers the press: {sim.answers[qid]['text']})")
        show("bot", f"(edits the card in place)\n{card.text}")
        show("@alice", "(presses ✅ Approve again on the same card's old buttons)")
        stale = SentMessage(card.chat_id, card.message_id, card.text, card.html,
                            {"inline_keyboard": [[{"text": "✅ Approve", "callback_data": approve}]]})
        qid = sim.press(admin, stale, approve)
        await sim.until(lambda: sim.answered(qid), 30)
        show("bot", f"(alert) {sim.answers[qid]['text']}")
        await say(admin, "/status")
        await bot.stop()
        await outbox.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await outbox.close()


if __name__ == "__main__":
    with telegram_sim() as running, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(running, Path(tmp) / "var"))
