"""Issue 16, finding 3 (second half): a dead-lettered notification, re-sent, works on its first delivery.

Real processes: `aiops serve --no-worker`, two `aiops worker`s, the OpenAI wire simulator. Worker A is
SIGKILLed inside the diagnosis (the simulator's first completion hangs), so its incident is left
`interrupted`; with WORKER_MAX_DELIVERIES=1 worker B dead-letters the reclaimed message. Alertmanager
(here: the test) sends the same notification again. Before, that delivery failed on
`UNIQUE constraint failed: aiops_corr_incidents.incident_id` (the correlation index closed the
interrupted incident and then tried to open the same id again) and was dead-lettered once more; now
the same incident runs to its plan, and nothing new is dead-lettered.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import cli_env, recording
from tests.security.decision_helpers import wait_for
from tests.servers import AiopsProcess, aiops_serve
from tests.sim.openai_server import OpenAISim, serve

pytestmark = pytest.mark.e2e


def test_resent_dead_letter_runs_on_first_delivery(tmp_path: Path) -> None:
    release, first_call = threading.Event(), threading.Event()

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        if not first_call.is_set():
            first_call.set()
            release.wait(60)  # worker A hangs here until it is killed
        return {"role": "assistant", "content": "No further findings."}

    webhook = json.loads(recording("disk-full").read_text())["webhook"]
    with serve(OpenAISim(responder)) as base_url:
        env = cli_env(tmp_path, LLM_MODE="auto", OPENAI_BASE_URL=base_url, LLM_TIMEOUT="120",
                      WORKER_CLAIM_IDLE_SECONDS="2", WORKER_MAX_DELIVERIES="1")
        with aiops_serve(env, tmp_path / "serve.log", "--no-worker") as svc:
            worker_a = AiopsProcess(["worker", "--concurrency", "1"], env, tmp_path / "worker-a.log")
            worker_b: AiopsProcess | None = None
            try:
                incident_id = httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook).json()["incident_id"]
                assert first_call.wait(90), worker_a.output()
                worker_a.stop(kill=True)
                worker_b = AiopsProcess(["worker", "--concurrency", "1"], env, tmp_path / "worker-b.log")
                dead = wait_for(lambda: httpx.get(f"{svc.url}/api/v1/dead-letters").json()["dead_letters"], 90,
                                "the dead letter")
                assert [d["body"]["incident_id"] for d in dead] == [incident_id]
                row = httpx.get(f"{svc.url}/api/v1/incidents").json()["incidents"][0]
                assert (row["incident_id"], row["status"]) == (incident_id, "interrupted")

                again = httpx.post(f"{svc.url}/webhook/alertmanager", json=webhook)
                assert again.status_code == 202 and again.json()["incident_id"] == incident_id

                def settled() -> dict[str, Any] | None:
                    r = httpx.get(f"{svc.url}/api/v1/incidents").json()["incidents"][0]
                    return r if r["status"] not in ("running", "interrupted") else None

                done = wait_for(settled, 90, "the re-sent notification's run")
                assert (done["incident_id"], done["status"]) == (incident_id, "awaiting_approval"), worker_b.output()
                assert len(httpx.get(f"{svc.url}/api/v1/dead-letters").json()["dead_letters"]) == 1
                assert "UNIQUE constraint" not in worker_b.output()
            finally:
                release.set()
                worker_a.stop(kill=True)
                if worker_b is not None:
                    worker_b.stop()
