"""LLM mode: the rules' ranking stays; the model's causes, citations and first choice explain it."""

from __future__ import annotations

from agents.diagnosis import explained
from core.models import Diagnosis, Hypothesis

RULES = Diagnosis(summary="a: cpu", hypotheses=[
    Hypothesis(component="a", cause="CPU saturation", confidence=0.6, evidence_ids=["ev-2"], rationale="r-a"),
    Hypothesis(component="b", cause="elevated latency", confidence=0.3, evidence_ids=["ev-3"], rationale="r-b"),
])


def test_the_model_explains_without_reordering() -> None:
    model = Diagnosis(summary="b is slow", hypotheses=[
        Hypothesis(component="b", cause="b's pool is exhausted", confidence=0.9, evidence_ids=["ev-3", "ev-7"]),
        Hypothesis(component="c", cause="c restarted", confidence=0.4, evidence_ids=["ev-8"], rationale="LLM"),
        Hypothesis(component="b", cause="a second b", confidence=0.1, evidence_ids=["ev-9"]),
    ])
    d = explained(RULES, model)
    assert [h.component for h in d.hypotheses] == ["a", "b", "c"]
    a, b, c = d.hypotheses
    assert a == RULES.hypotheses[0]  # not named by the model: untouched
    assert b.cause == "b's pool is exhausted" and b.evidence_ids == ["ev-3", "ev-7"] and b.confidence == 0.3
    assert b.rationale == "r-b; cause explained by the model"
    assert c.rationale == "LLM; not ranked by the rules" and c.confidence == 0.4
    assert d.summary == "a: CPU saturation (the model would put b first: b's pool is exhausted)"


def test_agreement_reads_as_one_story_and_without_a_rule_ranking_the_model_still_says_it() -> None:
    model = Diagnosis(summary="s", hypotheses=[
        Hypothesis(component="a", cause="a hot loop", confidence=0.8, evidence_ids=["ev-2"])])
    d = explained(RULES, model)
    assert d.summary == "a: a hot loop" and [h.component for h in d.hypotheses] == ["a", "b"]
    (alone,) = explained(Diagnosis(hypotheses=[]), model).hypotheses
    assert alone.cause == "a hot loop" and alone.rationale == "not ranked by the rules"
