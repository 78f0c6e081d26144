"""The same question is not paid for twice: a second process (new runner, shared real Redis) analysing
the same incident gets diagnosis and plan from the cache, with zero model calls."""

from __future__ import annotations

import asyncio

from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording, scripted_chain
from tests.scripted_model import crashloop_model
from tests.servers import RedisServer, redis_server  # noqa: F401
from tools.replay.recording import load_recorded


def test_repeat_analysis_hits_the_redis_cache(settings, redis_server: RedisServer):  # noqa: F811
    s = settings.model_copy(update={"REDIS_URL": redis_server.url})
    rec = load_recorded(recording("crashloop"))
    model = crashloop_model()

    async def analyze_then_reject():
        async with IncidentRunner(s, make_toolbox_factory(s, llm=scripted_chain(model))) as runner:
            out = await runner.analyze(rec.webhook, replay_spec(recording("crashloop"), s))
            await runner.decide(out.plan_id, approver="alice", decision="reject")  # closes it: not a duplicate
            return out

    first = asyncio.run(analyze_then_reject())
    assert len(first.report.llm_calls) == 2 and len(model.requests) == 2
    second = asyncio.run(analyze_then_reject())  # script is empty now: any model call would fail
    assert len(model.requests) == 2 and second.report.llm_calls == []
    assert second.report.mode == "scripted-1"  # the answers are the model's, served from the cache
    assert second.report.hypotheses[0].cause == "config.yaml fails to parse"
    assert second.report.plan.rationale == "restore last good config"
