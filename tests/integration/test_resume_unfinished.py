"""`IncidentRunner.resume_unfinished`: what a worker does with a message whose previous worker died.

Real graph, real SQLite checkpointer, recorded incidents in rule mode. The dead worker's last
checkpoint is reproduced with `aupdate_state` (what the checkpointer holds after a kill at that point).
"""

from __future__ import annotations

import asyncio

from core.models import Approval
from core.settings import Settings
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording
from tools.replay.recording import load_recorded


def test_paused_run_is_registered_and_a_run_killed_after_approval_is_not_executed(settings: Settings) -> None:
    async def scenario() -> None:
        rec = load_recorded(recording("router-uplink-flap"))
        spec = replay_spec(recording("router-uplink-flap"), settings)
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            assert await runner.resume_unfinished("inc-never-started", spec) is None
            paused = await runner.analyze(rec.webhook, spec, incident_id="inc-fixed-000001")
            assert paused.incident_id == "inc-fixed-000001" and paused.status.value == "awaiting_approval"
            # redelivered while paused: the same pause is registered again, nothing new runs
            again = await runner.resume_unfinished("inc-fixed-000001", spec)
            assert again is not None and again.status.value == "awaiting_approval"
            assert again.plan_id == paused.plan_id
            # the worker died after the approval was checkpointed and before the execution was:
            plan = paused.report.plan
            assert plan is not None
            approval = Approval(plan_id=plan.id, plan_hash=plan.content_hash, approver="alice",
                                decision="approve", channel="cli")
            config = {"configurable": {"thread_id": "inc-fixed-000001"}}
            await runner.graph.aupdate_state(config, {"approval": approval.model_dump(mode="json")},
                                             as_node="approval")
            assert (await runner.graph.aget_state(config)).next == ("execute",)
            closed = await runner.resume_unfinished("inc-fixed-000001", spec)
            assert closed is not None and closed.status.value in ("failed", "interrupted")
            assert closed.report.executions == []  # an action that may have run is never run again
            assert [r.status for r in runner.registry.list()] == [closed.status.value]

    asyncio.run(scenario())
