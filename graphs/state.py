"""The incident graph's state: small, typed, and JSON-native so any checkpointer can store it.

Values are the `model_dump(mode="json")` of the core models; nodes convert at their edges.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class IncidentState(TypedDict, total=False):
    webhook: dict[str, Any]  # AlertmanagerWebhook
    incident: dict[str, Any]  # Incident
    triage: dict[str, Any]  # TriageVerdict
    evidence: list[dict[str, Any]]  # Evidence
    hypotheses: list[dict[str, Any]]  # Hypothesis, ranked
    summary: str
    known_fix: dict[str, Any] | None  # a past incident's verified fix that applies again
    plan: dict[str, Any] | None  # Plan
    approval: dict[str, Any] | None  # Approval
    executions: list[dict[str, Any]]  # ExecutionResult
    verification: dict[str, Any] | None  # Verification
    escalation: dict[str, Any] | None  # Escalation: handed to a human, the incident ended
    failed_step: str | None  # a step that failed unexpectedly: the run escalated instead (service/runner.py)
    llm_calls: Annotated[list[dict[str, Any]], operator.add]  # LLMCall, appended by every node
    llm_used: Annotated[list[str], operator.add]  # nodes whose output came from an LLM
    status: str  # IncidentStatus
    self_healing: dict[str, Any] | None  # SelfHealingDecision: why the plan did or did not run without a human
    attempts: list[dict[str, Any]]  # Attempt: earlier plans (an automatic fix that failed verification)
    report: dict[str, Any]  # IncidentReport
    read_only: bool  # investigate(): a question, not an incident; nothing is remembered
