"""The Telegram bot end to end: real aiogram long-polling the Bot API simulator, the real runner on the
recorded crash loop (rule mode, real Ansible against stand-in hosts), the real outbox on the SQLite queue.

Covers the whole conversation (alert -> card with buttons -> Approve -> edited with execution and
verification), a stranger answered once, a group non-admin's press refused, double / expired /
changed-plan presses refused with the reason, English and Russian questions, 429 retry_after, HTML
escaping of alert text and the 4,096-character split.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agents.self_healing import self_healing_status
from core.models import AlertmanagerWebhook
from core.settings import Settings, load_settings
from interfaces.notify.outbox import Outbox
from interfaces.telegram.bot import TelegramBot
from interfaces.telegram.cards import lock_for
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tests.sim.telegram import SentMessage, TelegramSim, parse_html, telegram_sim
from tools.replay.recording import load_recorded

pytestmark = pytest.mark.e2e

ADMIN, APPROVER, STRANGER, GROUP = 111, 222, 999, -100500


@pytest.fixture
def sim() -> Any:
    with telegram_sim() as s:
        yield s


def bot_settings(sim: TelegramSim, tmp_path: Path, **kw: Any) -> Settings:
    base: dict[str, Any] = dict(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False,
                                LLM_MODE="rules", TELEGRAM_TOKEN=sim.token, TELEGRAM_API_URL=sim.url,
                                ADMIN_CHAT_ID=f"{ADMIN},{GROUP}", TELEGRAM_APPROVER_IDS=str(APPROVER),
                                TELEGRAM_POLL_TIMEOUT=1, NOTIFY_BACKOFF_SECONDS=0.05)
    return load_settings(**{**base, **kw})


@asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[tuple[IncidentRunner, TelegramBot, Outbox]]:
    async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
        outbox = Outbox.from_settings(settings)
        outbox.attach(runner)
        bot = TelegramBot(settings, runner, outbox=outbox)
        tasks = [asyncio.create_task(bot.run()), asyncio.create_task(outbox.run())]
        await asyncio.wait_for(bot.started.wait(), 10)
        try:
            yield runner, bot, outbox
        finally:
            await bot.stop()
            await outbox.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await outbox.close()


def run(settings: Settings, scenario: Callable[[IncidentRunner, TelegramBot, Outbox], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with session(settings) as (runner, bot, outbox):
            return await scenario(runner, bot, outbox)
    return asyncio.run(main())


async def alert(runner: IncidentRunner, settings: Settings, name: str = "crashloop") -> Any:
    rec = load_recorded(recording(name))
    return await runner.analyze(rec.webhook, replay_spec(recording(name), settings))


def card_in(sim: TelegramSim, chat: int) -> Callable[[], SentMessage | None]:
    return lambda: next((m for m in sim.messages.get(chat, []) if any(
        b.get("callback_data", "").startswith("plan:approve:") for b in m.buttons())), None)


def data(card: SentMessage, action: str) -> str:
    return next(b["callback_data"] for b in card.buttons() if b["callback_data"].startswith(f"plan:{action}:"))


def test_whole_conversation_alert_to_approved_executed_verified(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        sim.send_text(admin, "/start")
        await sim.until(lambda: sim.messages.get(ADMIN))
        outcome = await alert(runner, settings)
        assert outcome.status.value == "awaiting_approval"
        card = await sim.until(card_in(sim, ADMIN))
        group_card = await sim.until(card_in(sim, GROUP))
        sim.press(admin, card, data(card, "approve"))
        await sim.until(lambda: "Verify" in card.text and "Verify" in group_card.text, 60)
        await sim.until(lambda: all(any(m.photo is not None and m.text.startswith("📉") for m in sim.messages[c])
                                    for c in (ADMIN, GROUP)), 60)  # the verification chart, from the outbox
        n = len(sim.messages[ADMIN])
        sim.press(admin, card, card.buttons()[0]["callback_data"])  # Details
        await sim.until(lambda: len(sim.messages[ADMIN]) > n, 30)
        return outcome, card, group_card, await runner.report(outcome.incident_id)

    outcome, card, group_card, report = run(settings, scenario)
    start = sim.messages[ADMIN][0].text
    assert "you are an approver" in start and "111" in start
    # the card comes with the chart of its top evidence (too long for a caption: photo, then the card)
    chart = sim.messages[ADMIN][1]
    assert chart.photo is not None and chart.photo_size == (880, 374) and sim.messages[ADMIN][2] is card
    assert outcome.incident_id in chart.text and "service_restarts_per_minute" in chart.text
    assert len(chart.text) <= 1024 and len(card.text) > 1024 and card.photo is None
    # after execution, the verification chart: the metric re-read after the fix, with the verdict
    after = [m for m in sim.messages[ADMIN] if m.photo is not None and m.text.startswith("📉 Verification")]
    assert len(after) == 1 and "recovered" in after[0].text and "baseline 0" in after[0].text
    assert [m for m in sim.messages[GROUP] if m.photo is not None and m.text.startswith("📉 Verification")]
    details = "\n".join(m.text for m in sim.messages[ADMIN][2:])
    assert "Evidence" in details and all(f"ev-{i}" in details for i in range(1, 6))
    # the registered commands and the polling set-up
    assert {c["command"] for c in sim.commands} >= {"start", "status", "analyze", "pending", "approve", "reject",
                                                    "help", "incidents", "show", "heal"}
    assert sim.calls_of("deleteWebhook") and sim.calls_of("setMyCommands")
    # the approval card: diagnosis with evidence, plan, risk, dry run, and what happened after the press
    plan = outcome.report.plan
    assert f"plan {plan.id}".lower() in card.text.lower() and "risk MEDIUM" in card.text
    assert "Diagnosis" in card.text and "ev-1" in card.text and "check: ansible --check" in card.text
    assert "Approved by 111 via telegram" in card.text
    assert "Execute done: rollback_config on app-02" in card.text and "RECOVERED" in card.text
    assert card.edits >= 1 and [b["text"] for b in card.buttons()] == ["🔎 Details"]  # no more Approve/Reject
    assert "RECOVERED" in group_card.text  # every admin chat's card follows
    assert report.status.value == "resolved" and report.approval.approver == str(ADMIN)
    assert report.approval.channel == "telegram" and report.approval.plan_hash == plan.content_hash
    press = [a for a in sim.answers.values()]
    assert press and press[0]["text"].startswith("Approving")
    # the callback data names the plan and (a prefix of) its hash
    assert re.fullmatch(rf"plan:approve:{plan.id}:{plan.content_hash[:16]}", data_of(sim, ADMIN, "approve"))


def data_of(sim: TelegramSim, chat: int, action: str) -> str:
    sent = [c for c in sim.calls_of("sendMessage") if int(c.params["chat_id"]) == chat and c.params.get("reply_markup")]
    buttons = [b for row in sent[0].params["reply_markup"]["inline_keyboard"] for b in row]
    return next(b["callback_data"] for b in buttons if b["callback_data"].startswith(f"plan:{action}:"))


def test_stranger_is_answered_once_and_group_non_admin_press_is_refused(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    stranger = sim.user(STRANGER, "Mallory", "mallory")
    approver = sim.user(APPROVER, "Bob", "bob")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        for text in ("/start", "/pending", "approve everything"):
            sim.send_text(stranger, text)
        await sim.until(lambda: len(bot.ctx.refused) == 3)
        outcome = await alert(runner, settings)
        group_card = await sim.until(card_in(sim, GROUP))
        qid = sim.press(stranger, group_card, data(group_card, "approve"))
        await sim.until(lambda: sim.answered(qid))
        still = runner.registry.by_plan(outcome.plan_id)
        # an approver in the same group may decide (authorisation by the pressing user, not the chat)
        qid2 = sim.press(approver, group_card, data(group_card, "reject"))
        await sim.until(lambda: "Rejected" in group_card.text, 30)
        return still, sim.answered(qid), sim.answered(qid2), await runner.report(outcome.incident_id)

    still, refusal, ok, report = run(settings, scenario)
    assert len(sim.messages.get(STRANGER, [])) == 1  # answered once, then ignored
    assert "not authorised" in sim.messages[STRANGER][0].text and str(STRANGER) in sim.messages[STRANGER][0].text
    assert still is not None and still.status == "awaiting_approval"  # the stranger's press consumed nothing
    assert refusal["show_alert"] is True and "not an approver" in refusal["text"] and "@mallory" in refusal["text"]
    assert ok["text"].startswith("Rejecting")
    assert report.status.value == "rejected" and report.approval.approver == str(APPROVER)
    assert report.executions == []


def test_double_press_is_refused_with_who_decided(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    admin, approver = sim.user(ADMIN, "Alice", "alice"), sim.user(APPROVER, "Bob", "bob")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        await alert(runner, settings)
        card = await sim.until(card_in(sim, ADMIN))
        group_card = await sim.until(card_in(sim, GROUP))
        stale = SentMessage(group_card.chat_id, group_card.message_id, group_card.text, group_card.html,
                            dict(group_card.reply_markup or {}))
        q1 = sim.press(admin, card, data(card, "reject"))
        await sim.until(lambda: "Rejected" in card.text and not lock_for(card_plan(card)).locked(), 30)
        q2 = sim.press(approver, stale, data(stale, "approve"))  # the old buttons, pressed afterwards
        await sim.until(lambda: sim.answered(q2), 30)
        return sim.answered(q1), sim.answered(q2), runner.registry.by_plan(card_plan(card))

    first, second, row = run(settings, scenario)
    assert first["text"].startswith("Rejecting")
    assert second["show_alert"] is True and "Refused" in second["text"]
    assert "no longer awaiting approval" in second["text"] and "already rejected by 111" in second["text"]
    assert row.status == "rejected"


def test_two_presses_at_once_decide_once(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    admin, approver = sim.user(ADMIN, "Alice", "alice"), sim.user(APPROVER, "Bob", "bob")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        outcome = await alert(runner, settings)
        card = await sim.until(card_in(sim, ADMIN))
        group_card = await sim.until(card_in(sim, GROUP))
        q1 = sim.press(admin, card, data(card, "approve"))
        q2 = sim.press(approver, group_card, data(group_card, "approve"))
        await sim.until(lambda: sim.answered(q1) and sim.answered(q2), 30)
        await sim.until(lambda: "Verify" in card.text, 60)
        return [sim.answered(q1), sim.answered(q2)], await runner.report(outcome.incident_id)

    answers, report = run(settings, scenario)
    assert sorted(a["text"].startswith("Approving") for a in answers) == [False, True]
    refused = next(a for a in answers if not a["text"].startswith("Approving"))
    assert refused["show_alert"] is True and "Refused" in refused["text"]
    assert len(report.executions) == 1 and report.status.value == "resolved"


def card_plan(card: SentMessage) -> str:
    return data(card, "approve").split(":")[2] if any(
        b["callback_data"].startswith("plan:approve") for b in card.buttons()) else card.buttons()[0][
        "callback_data"].split(":")[2]


def test_expired_press_is_refused_and_nothing_runs(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path, APPROVAL_TTL_SECONDS=1)
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        outcome = await alert(runner, settings)
        card = await sim.until(card_in(sim, ADMIN))
        await asyncio.sleep(1.3)
        qid = sim.press(admin, card, data(card, "approve"))
        await sim.until(lambda: sim.answered(qid), 30)
        return sim.answered(qid), await runner.report(outcome.incident_id)

    answer, report = run(settings, scenario)
    assert answer["show_alert"] is True and "expired" in answer["text"] and "Nothing was executed" in answer["text"]
    assert report.executions == [] and report.status.value != "resolved"


def test_press_on_a_changed_plan_is_refused(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        outcome = await alert(runner, settings)
        card = await sim.until(card_in(sim, ADMIN))
        config = {"configurable": {"thread_id": outcome.incident_id}}
        state = (await runner.graph.aget_state(config)).values
        plan = dict(state["plan"])
        plan["actions"] = [dict(plan["actions"][0], target="app-03")]  # someone edits the paused plan
        await runner.graph.aupdate_state(config, {"plan": plan})
        qid = sim.press(admin, card, data(card, "approve"))
        await sim.until(lambda: sim.answered(qid), 30)
        return sim.answered(qid), await runner.report(outcome.incident_id), runner.registry.by_plan(outcome.plan_id)

    answer, report, row = run(settings, scenario)
    assert "changed since this message was sent" in answer["text"] and answer["show_alert"] is True
    assert report.executions == [] and row.status == "awaiting_approval"


def test_english_and_russian_questions_without_llm(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        outcome = await alert(runner, settings)
        await sim.until(card_in(sim, ADMIN))
        n = len(sim.messages[ADMIN])
        replies: dict[str, list[str]] = {}
        for question in ("show pending plans", "покажи планы на утверждении", "что с payments-api?",
                         "why is checkout slow since 10:00?", "какой статус?", "approve it", "одобряю",
                         "tell me a joke"):
            sim.send_text(admin, question)
            await sim.until(lambda n=n: len(sim.messages[ADMIN]) > n and not _pending_reply(sim), 30)
            await asyncio.sleep(0.3)
            replies[question] = [m.text for m in sim.messages[ADMIN][n:]]
            n = len(sim.messages[ADMIN])
        return outcome, replies, runner.registry.by_plan(outcome.plan_id)

    outcome, replies, row = run(settings, scenario)
    assert any(outcome.plan_id in t and "Awaiting approval" in t for t in replies["show pending plans"])
    assert replies["покажи планы на утверждении"][0].startswith("Планы, ожидающие утверждения")
    assert any(outcome.plan_id in t for t in replies["покажи планы на утверждении"])
    ru = "\n".join(replies["что с payments-api?"])
    assert "Анализирую payments-api" in ru and "только чтение" in ru and "/analyze payments-api 1h" in ru
    en = "\n".join(replies["why is checkout slow since 10:00?"])
    assert "Investigating checkout" in en and "/analyze checkout" in en
    assert "aiops status" in replies["какой статус?"][0] and "1 open" in replies["какой статус?"][0]
    assert "never approve or reject from free text" in replies["approve it"][0]
    assert "не принимаю решений по свободному тексту" in replies["одобряю"][0]
    assert "did not understand" in replies["tell me a joke"][0]
    assert row.status == "awaiting_approval"  # nothing typed approved anything


def _pending_reply(sim: TelegramSim) -> bool:
    last = sim.messages[ADMIN][-1].text
    return last.startswith(("🔎", "Plans awaiting", "Планы, ожидающие"))


def test_429_retry_after_is_honoured_and_alert_html_is_escaped(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path, ADMIN_CHAT_ID=str(ADMIN))
    webhook = AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "g", "status": "firing", "alerts": [{
            "status": "firing", "startsAt": "2026-03-11T09:09:00Z",
            "labels": {"alertname": "Disk<Full>&Co", "service": "pay<b>ments", "severity": "critical"},
            "annotations": {"summary": "<script>alert('x')</script> & 5 < 6"}}]})

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        sim.rate_limit("sendMessage", times=1, retry_after=1)
        await runner.analyze(webhook, {"kind": "live"})
        msg = await sim.until(lambda: sim.messages.get(ADMIN), 30)
        return msg[0], [c.status for c in sim.calls_of("sendMessage")]

    msg, statuses = run(settings, scenario)
    assert statuses[:2] == [429, 200]  # told to wait, waited, delivered once
    assert "Disk<Full>&Co" in msg.text and "pay<b>ments" in msg.text  # shown literally, not as markup
    assert "&lt;b&gt;" in (msg.html or "")


def test_long_reports_are_split_under_4096(sim: TelegramSim, tmp_path: Path) -> None:
    from interfaces.telegram import cards, render

    settings = bot_settings(sim, tmp_path)
    lines = [f"<b>line {i}</b> {render.esc('x & <y> ' * 30)}" for i in range(120)] + [render.esc("z" * 9000)]
    text = "\n".join(lines)

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        await cards.send_long(bot.bot, ADMIN, text)
        return sim.messages[ADMIN]

    sent = run(settings, scenario)
    assert len(sent) >= 5 and all(c.status == 200 for c in sim.calls_of("sendMessage"))
    assert all(len(m.text) <= 4096 for m in sent)
    shown = "\n".join(m.text for m in sent)
    assert shown.count("line ") == 120 and shown.count("z") == 9000
    assert parse_html(render.esc("a<b>&c")) == "a<b>&c"


def test_llm_chat_agent_uses_read_only_tools_answers_in_russian_and_is_cached(sim: TelegramSim,
                                                                               tmp_path: Path) -> None:
    from langchain_core.messages import AIMessage, ToolMessage

    from graphs.chat import ChatAgent
    from interfaces.telegram.ops import on_demand_webhook
    from tests.conftest import scripted_chain
    from tests.scripted_model import ScriptedChatModel, reply, tool_call

    settings = bot_settings(sim, tmp_path)
    admin = sim.user(ADMIN, "Alice", "alice")

    def final(messages: list[Any], tools: list[str]) -> AIMessage:
        result = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
        plan = re.search(r"plan-[0-9a-f]{12}", str(result.content))
        return AIMessage(content=f"Ждёт утверждения один план: {plan.group(0) if plan else '?'} <b>&</b>")

    model = ScriptedChatModel(script=[reply(tool_call("pending_plans")), final])

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        bot.ctx.chat = ChatAgent(runner, scripted_chain(model), settings, on_demand_webhook)
        outcome = await alert(runner, settings)
        await sim.until(card_in(sim, ADMIN))
        n = len(sim.messages[ADMIN])
        for _ in range(2):  # the second time from the cache (CACHE_TTL_NL): no model call
            sim.send_text(admin, "какие планы ждут утверждения?")
            await sim.until(lambda n=n: len(sim.messages[ADMIN]) > n, 30)
            n = len(sim.messages[ADMIN])
        sim.send_text(admin, "approve it")  # the script is exhausted: the model fails, the parser answers
        await sim.until(lambda: len(sim.messages[ADMIN]) > n, 30)
        return outcome, [m.text for m in sim.messages[ADMIN][-3:]], bot.ctx.chat

    outcome, texts, chat = run(settings, scenario)
    assert texts[0] == texts[1] == f"Ждёт утверждения один план: {outcome.plan_id} <b>&</b>"  # escaped, literal
    assert len(model.requests) == 3  # 2 for the first question, 0 for the cached one, 1 failed attempt
    assert "pending_plans" in model.requests[0]["tools"]
    assert not {"approve", "reject", "decide", "execute"} & set(model.requests[0]["tools"])  # read-only only
    assert "never approve or reject from free text" in texts[2]


def test_in_a_group_the_bot_answers_only_what_is_addressed_to_it(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path)
    approver, stranger = sim.user(APPROVER, "Bob", "bob"), sim.user(STRANGER, "Mallory", "mallory")
    group = sim.group_chat(GROUP)

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        sim.send_text(approver, "lunch at 12?", chat=group)  # people talking to each other
        sim.send_text(stranger, "me too", chat=group)
        sim.send_text(approver, "@aiops_sim_bot show pending plans", chat=group)
        await sim.until(lambda: sim.messages.get(GROUP), 30)
        sim.send_text(approver, "/status@aiops_sim_bot", chat=group)
        await sim.until(lambda: len(sim.messages.get(GROUP, [])) >= 2, 30)
        await asyncio.sleep(0.5)
        return [m.text for m in sim.messages[GROUP]], list(bot.ctx.refused)

    texts, refused = run(settings, scenario)
    assert texts[0] == "No plans are awaiting approval." and texts[1].startswith("aiops status")
    assert len(texts) == 2 and refused == []  # the chatter was not answered, the stranger not even refused


def test_a_chat_that_refuses_does_not_stop_the_others(sim: TelegramSim, tmp_path: Path) -> None:
    sim.blocked.add(333)  # listed in ADMIN_CHAT_ID but never started the bot
    settings = bot_settings(sim, tmp_path, ADMIN_CHAT_ID=f"333,{ADMIN}")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        await alert(runner, settings)
        await sim.until(card_in(sim, ADMIN), 30)
        await asyncio.sleep(0.5)
        return await outbox.dead_letters()

    dead = run(settings, scenario)
    # the card's first request to a chat is now its chart (sendPhoto): that is where 333 refuses
    assert dead == [] and 403 in [c.status for c in sim.calls_of("sendPhoto") + sim.calls_of("sendMessage")]
    assert sim.messages.get(333) is None and sim.messages[ADMIN]


def test_aiops_bot_with_a_wrong_token_is_one_line(sim: TelegramSim, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    env = cli_env(tmp_path, TELEGRAM_TOKEN="123456:WRONG-token-abcdefghijklmnopqrstuv", TELEGRAM_API_URL=sim.url,
                  ADMIN_CHAT_ID=str(ADMIN))
    proc = subprocess.run([sys.executable, "-m", "interfaces.cli", "bot"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("aiops: error: Telegram refused TELEGRAM_TOKEN (401 Unauthorized): "
                                                    "copy the token from @BotFather again")
    assert "Traceback" not in proc.stderr


def test_commands_analyze_show_incidents_reject_heal(sim: TelegramSim, tmp_path: Path) -> None:
    settings = bot_settings(sim, tmp_path, ADMIN_CHAT_ID=str(ADMIN))
    admin = sim.user(ADMIN, "Alice", "alice")

    async def scenario(runner: IncidentRunner, bot: TelegramBot, outbox: Outbox) -> Any:
        got: dict[str, list[str]] = {}
        n = 0

        async def command(text: str, expect: int = 1) -> None:
            nonlocal n
            sim.send_text(admin, text)
            await sim.until(lambda: len(sim.messages.get(ADMIN, [])) >= n + expect, 60)
            await asyncio.sleep(0.3)
            got[text] = [m.text for m in sim.messages[ADMIN][n:]]
            n = len(sim.messages[ADMIN])

        await command("/analyze ../../etc/passwd")
        await command("/analyze checkout 30m", 3)  # investigating, the card, and the escalation
        outcome = await alert(runner, settings)  # a recorded incident whose plan waits for a human
        await sim.until(card_in(sim, ADMIN), 30)
        n = len(sim.messages[ADMIN])
        await command("/incidents")
        await command("/heal off")
        switched_off = not self_healing_status(settings)["enabled"]
        await command("/heal on")
        await command("/help")
        await command(f"/reject {outcome.plan_id}")
        got["again"] = []
        sim.send_text(admin, f"/reject {outcome.plan_id}")
        await sim.until(lambda: len(sim.messages[ADMIN]) > n, 60)
        got["again"] = [sim.messages[ADMIN][-1].text]
        n = len(sim.messages[ADMIN])
        await command(f"/show {outcome.incident_id}")
        card = card_in(sim, ADMIN)() or next(m for m in sim.messages[ADMIN] if outcome.incident_id in m.text
                                             and m.buttons())
        return got, outcome, card, await runner.report(outcome.incident_id), switched_off

    got, outcome, card, report, switched_off = run(settings, scenario)
    assert got["/analyze ../../etc/passwd"][-1].startswith("⚠️ not a service name")
    on_demand = got["/analyze checkout 30m"]
    assert on_demand[0].startswith("🔎 Investigating checkout over the last 30m")
    assert "OnDemandAnalysis" in on_demand[1] and "status escalated" in on_demand[1]
    assert on_demand[2].startswith("🔥 Escalation: incident inc-") and "needs a human" in on_demand[2]
    listed = got["/incidents"][0]
    assert outcome.incident_id in listed and "awaiting_approval" in listed and "escalated" in listed
    # /heal flips the real run-time kill switch (persisted, the same one as the API and the CLI)
    assert switched_off and "nothing runs without a human" in got["/heal off"][0]
    assert "self-healing: on" in got["/heal on"][0] and f"telegram:{ADMIN}" in got["/heal on"][0]
    assert self_healing_status(settings)["enabled"]
    assert "/analyze SERVICE" in got["/help"][0]
    assert got[f"/reject {outcome.plan_id}"][0].startswith(f"Rejected {outcome.plan_id}")
    assert got["again"][0].startswith("⛔ Refused") and "not awaiting approval" in got["again"][0]
    assert "Evidence" in "\n".join(got[f"/show {outcome.incident_id}"])
    shown = [m for m in sim.messages[ADMIN] if m.photo is not None and m.text.startswith(f"📈 {outcome.incident_id}")]
    assert shown and shown[-1].text in got[f"/show {outcome.incident_id}"][0]  # /show starts with the chart
    assert "Rejected by 111 via telegram" in card.text and card.edits >= 1
    assert report.status.value == "rejected" and report.executions == []
