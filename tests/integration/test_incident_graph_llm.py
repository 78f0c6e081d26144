"""The LLM path: a scripted chat model makes real tool calls and structured outputs through the same
graph; citations are validated, cost is recorded, and failures fall back to the rule-based mode."""

from __future__ import annotations

import asyncio
import re

from langchain_core.messages import SystemMessage, ToolMessage

from core.llm import LLMChain
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording, scripted_chain
from tests.scripted_model import ScriptedChatModel, reply, tool_call
from tools.replay.recording import load_recorded


def _analyze(settings, name, model):
    async def go():
        rec = load_recorded(recording(name))
        async with IncidentRunner(settings, make_toolbox_factory(settings, llm=scripted_chain(model))) as runner:
            return await runner.analyze(rec.webhook, replay_spec(recording(name), settings))
    return asyncio.run(go())


def _analyze_rules(settings, name):
    """The same recording in rule mode, in a registry of its own (not a duplicate of the LLM run)."""
    settings = settings.model_copy(update={"AIOPS_DATA_DIR": settings.AIOPS_DATA_DIR / "rules"})

    async def go():
        rec = load_recorded(recording(name))
        async with IncidentRunner(settings, make_toolbox_factory(settings, llm=LLMChain([]))) as runner:
            return await runner.analyze(rec.webhook, replay_spec(recording(name), settings))
    return asyncio.run(go()).report


def _diagnosis_citing_last_tool_result(messages, tools):
    tool_ev = [re.match(r"(ev-\d+):", m.content).group(1) for m in messages if isinstance(m, ToolMessage)]
    return reply(tool_call("Diagnosis", summary="bad config after deploy", hypotheses=[
        {"component": "payments-api", "cause": "v2.14.1 config.yaml fails to parse at start-up", "confidence": 0.9,
         "evidence_ids": [tool_ev[-1], "ev-1", "ev-999"]},
        {"component": "checkout", "cause": "victim: upstream 503s", "confidence": 0.2, "evidence_ids": ["ev-999"]},
    ]))


def test_llm_path_uses_tools_structured_output_and_records_cost(settings):
    model = ScriptedChatModel(script=[
        reply(tool_call("compare_to_baseline", metric="service_restarts_per_minute", service="payments-api")),
        _diagnosis_citing_last_tool_result,
        reply(tool_call("RemediationPlan", rationale="restore last good config", steps=[
            {"action": "rollback_config", "target": "app-02",
             "parameters": {"service": "payments-api", "config_path": "/etc/payments-api/config.yaml"}}])),
    ])
    out = _analyze(settings, "crashloop", model)
    r = out.report
    assert out.status.value == "awaiting_approval" and r.mode == "scripted-1"
    # triage needed no LLM (rules classified it); diagnosis took two turns; planning one
    assert [c.node for c in r.llm_calls] == ["diagnosis", "diagnosis", "remediation"]
    assert all(c.provider == "scripted" and c.input_tokens > 0 and c.ok for c in r.llm_calls)
    assert "Diagnosis" in model.requests[0]["tools"] and "query_metric" in model.requests[0]["tools"]
    assert model.requests[2]["tool_choice"] == "RemediationPlan"
    tool_ev = [e for e in r.evidence if e.tool == "compare_to_baseline"]
    assert len(tool_ev) == 1 and "robust_z" in tool_ev[0].excerpt
    # the rules rank; the model explains: its cause and citations on the component it named (unknown
    # citations dropped); a hypothesis citing nothing real is dropped entirely
    assert [h.component for h in r.hypotheses] == [h.component for h in _analyze_rules(settings, "crashloop").hypotheses]
    top = r.hypotheses[0]
    assert top.component == "payments-api" and top.cause == "v2.14.1 config.yaml fails to parse at start-up"
    assert tool_ev[0].id in top.evidence_ids and "ev-1" in top.evidence_ids and "ev-999" not in top.evidence_ids
    assert all(h.cause != "victim: upstream 503s" for h in r.hypotheses)
    assert r.plan.actions[0].name == "rollback_config" and r.plan.rationale == "restore last good config"


def test_invalid_llm_plan_falls_back_to_catalog_rules(settings):
    model = ScriptedChatModel(script=[
        reply(tool_call("Diagnosis", hypotheses=[
            {"component": "payments-api", "cause": "bad config", "confidence": 0.8, "evidence_ids": ["ev-1"]}])),
        reply(tool_call("RemediationPlan", rationale="just run it", steps=[
            {"action": "run_shell", "target": "app-02", "parameters": {"cmd": "systemctl restart payments-api"}}])),
    ])
    out = _analyze(settings, "crashloop", model)
    assert out.report.plan.actions[0].name in ("rollback_config", "restart_service")
    last = out.report.llm_calls[-1]
    assert last.node == "remediation" and not last.ok and "'run_shell' is not a catalog action" in last.error
    assert out.report.mode == "scripted-1"  # the diagnosis still came from the model


def test_failing_llm_degrades_to_rules(settings):
    model = ScriptedChatModel(script=[ConnectionError("connection refused")] * 5)
    out = _analyze(settings, "crashloop", model)
    r = out.report
    assert r.mode == "rules" and r.hypotheses and r.hypotheses[0].evidence_ids
    assert r.llm_calls and not any(c.ok for c in r.llm_calls)
    assert "ConnectionError" in r.llm_calls[0].error


def test_duplicate_costs_no_llm_call(settings):
    model = ScriptedChatModel(script=[
        reply(tool_call("Diagnosis", hypotheses=[
            {"component": "payments-api", "cause": "bad config", "confidence": 0.8, "evidence_ids": ["ev-1"]}])),
        reply(tool_call("RemediationPlan", rationale="r", steps=[
            {"action": "restart_service", "target": "app-02", "parameters": {"service": "payments-api"}}])),
    ])
    _analyze(settings, "crashloop", model)
    assert len(model.requests) == 2
    dup = _analyze(settings, "crashloop", model)
    assert dup.status.value == "duplicate" and len(model.requests) == 2 and dup.report.llm_calls == []


def test_failed_tool_calls_reach_the_model_as_errors_and_are_not_citable(settings):
    """A selector the source cannot parse and an out-of-range argument: both come back to the model as
    `error` results (status first, no evidence id), the loop goes on, and neither becomes evidence."""
    seen: list[str] = []

    def diagnosis(messages, tools):
        seen.extend(m.content for m in messages if isinstance(m, ToolMessage))
        return reply(tool_call("Diagnosis", summary="bad config", hypotheses=[
            {"component": "payments-api", "cause": "config fails to parse", "confidence": 0.8,
             "evidence_ids": ["ev-1"]}]))

    model = ScriptedChatModel(script=[
        reply(tool_call("query_metric", metric="restarts{"), tool_call("search_logs", service="payments-api", minutes=0),
              tool_call("search_logs", service="no-such-service", minutes=5)),
        diagnosis,
        reply(tool_call("RemediationPlan", rationale="r", steps=[
            {"action": "restart_service", "target": "app-02", "parameters": {"service": "payments-api"}}])),
    ])
    r = _analyze(settings, "crashloop", model).report
    bad_selector, bad_arg, nothing = seen  # "<ids>: " + the fenced ToolResult text, status first
    assert bad_selector.startswith("no evidence: ") and '{"status":"error"' in bad_selector
    assert "restarts{" in bad_selector
    assert bad_arg.startswith("no evidence: ") and '{"status":"error"' in bad_arg
    assert "invalid arguments: minutes" in bad_arg
    assert re.match(r"ev-\d+: ", nothing) and '{"status":"no_data"' in nothing  # "nothing logged" is citable
    assert not any(e.tool == "query_metric" for e in r.evidence)
    (empty,) = [e for e in r.evidence if e.tool == "search_logs"]
    assert empty.signal == "log" and empty.component == "no-such-service" and not empty.anomalous
    assert r.mode == "scripted-1" and r.hypotheses[0].component == "payments-api"
    system = next(m for m in model.requests[0]["messages"] if isinstance(m, SystemMessage)).content
    assert "Metric tools (" in system and "Log tools (" in system  # the toolsets' notes.md
    assert "Proxmox VE tools" not in system  # no PVE configured for a replay: its notes stay out


def test_the_rules_rank_and_the_model_explains(settings):
    """A model that would rank otherwise (the last-listed component first, and one nobody ranked) does
    not reorder the diagnosis: a small model measured worse than the rules (docs/evals.md, "LLM mode").
    It explains: its cause on the components it named, its choice in the summary, its extra one last."""
    rules = _analyze_rules(settings, "crashloop")
    picked: list[str] = []

    def contrarian(messages, tools):
        brief = "\n".join(str(m.content) for m in messages)
        listed = [c for _, c in re.findall(r"^(ev-\d+) \[metrics\] ([^:]+):", brief, re.M)]
        picked.append(listed[-1])
        ev = re.search(rf"^(ev-\d+) \[metrics\] {re.escape(listed[-1])}:", brief, re.M).group(1)
        return reply(tool_call("Diagnosis", summary="contrarian", hypotheses=[
            {"component": listed[-1], "cause": "the model's own story", "confidence": 0.9, "evidence_ids": [ev]},
            {"component": "made-up-service", "cause": "only the model says so", "confidence": 0.5,
             "evidence_ids": ["ev-1"]}]))

    model = ScriptedChatModel(script=[contrarian, reply(tool_call("RemediationPlan", rationale="r", steps=[
        {"action": "restart_service", "target": "app-02", "parameters": {"service": "payments-api"}}]))])
    r = _analyze(settings, "crashloop", model).report
    ranked = [h.component for h in rules.hypotheses]
    assert picked and picked[0] != ranked[0]  # the model disagrees with the rules' first choice
    assert r.mode == "scripted-1" and [h.component for h in r.hypotheses] == [*ranked, "made-up-service"]
    assert [h.confidence for h in r.hypotheses[:-1]] == [h.confidence for h in rules.hypotheses]
    (named,) = [h for h in r.hypotheses if h.component == picked[0]]
    assert named.cause == "the model's own story" and "cause explained by the model" in named.rationale
    assert r.hypotheses[0].cause == rules.hypotheses[0].cause  # not named by the model: the rules' cause
    assert "not ranked by the rules" in r.hypotheses[-1].rationale
