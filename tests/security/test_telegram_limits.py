"""Issue 16, findings 6d and 6e: Telegram replies that are too long, and buttons without a plan hash.

Real aiogram long-polling the Bot API simulator (which refuses a text over 4,096 characters after
entity parsing, and a button answer over 200), the real runner on the recorded crash loop.

- A reply over 4,096 characters (here `/heal` and `/status` with an operator's policy of many long
  rule names) used to be refused by Telegram ("message is too long") and dropped, with a traceback in
  the log; now it arrives, split between lines, whichever handler wrote it.
- A press whose callback data carries no plan hash (Telegram's apps only send a button's own data,
  but an MTProto client can send any) matched every version of the plan by prefix and approved it;
  now it is refused and nothing runs. Data that is not one of our buttons at all is refused too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from interfaces.notify.outbox import Outbox
from interfaces.telegram.bot import TelegramBot
from tests.e2e.test_telegram_bot import ADMIN, alert, bot_settings, card_in, data, run
from tests.sim.telegram import TelegramSim, telegram_sim, utf16_len

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Any:
    with telegram_sim() as s:
        yield s


def test_replies_over_4096_characters_arrive_split(sim: TelegramSim, tmp_path: Path) -> None:
    rules = [{"name": f"rotated-log-cleanup-for-the-backup-and-archive-hosts-of-datacentre-{i:03d}-rack-{i % 7}",
              "actions": ["cleanup_rotated_logs"], "targets": [f"backup-{i:03d}"]} for i in range(60)]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"rules": rules}))
    settings = bot_settings(sim, tmp_path, POLICY_FILE=str(policy))
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: Any, bot: TelegramBot, outbox: Outbox) -> Any:
        for command in ("/heal", "/status"):
            before = len(sim.chat_log(ADMIN))
            sim.send_text(admin, command)
            await sim.until(lambda before=before: len(sim.chat_log(ADMIN)) >= before + 2, 20)

    run(settings, scenario)
    refused = [c for c in sim.calls_of("sendMessage") if c.status != 200]
    assert refused == [], [(c.status, len(c.params.get("text", ""))) for c in refused]
    texts = [m.text for m in sim.chat_log(ADMIN)]
    assert all(utf16_len(t) <= 4096 for t in texts)
    joined = "".join(texts)  # one line over the limit is cut into consecutive messages
    assert all(r["name"] in joined for r in rules)  # every rule name arrived, none lost at a cut


def test_a_button_without_the_plan_hash_is_refused(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: Any, bot: TelegramBot, outbox: Outbox) -> Any:
        outcome = await alert(runner, settings)
        card = await sim.until(card_in(sim, ADMIN))
        good = data(card, "approve")
        no_hash = good.rsplit(":", 1)[0] + ":"  # plan:approve:<plan id>:  (the hash emptied)
        assert good.startswith(no_hash) and len(good) > len(no_hash)
        answers = []
        for forged in (no_hash, good.rsplit(":", 1)[0], "plan:approve"):
            qid = sim.press(admin, card, forged, forged=True)
            answers.append(await sim.until(lambda qid=qid: sim.answered(qid), 20))
        return outcome, answers, await runner.report(outcome.incident_id)

    outcome, answers, report = run(settings, scenario)
    assert all(a.get("show_alert") and a["text"].startswith("⛔ Refused") for a in answers), answers
    assert "no plan hash" in answers[0]["text"]
    assert report.status.value == "awaiting_approval" and report.approval is None and not report.executions
