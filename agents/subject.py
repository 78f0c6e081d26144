"""The alert's own subject, and the rule that puts it first.

A hypothesis needs evidence: a component with none (no anomalous metric, no notable log template, no
anomalous state read from a tool, no verified fix remembered for it) is not ranked at all. The
alert's own subject (its service, else its host, else its target) is the default hypothesis: it is
always in the ranking, first when nothing else has evidence, and is outranked only by a component
whose cited evidence scores higher than the subject's own evidence plus `SUBJECT_PRIOR`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.models import Evidence, Incident, TriageVerdict

# What the alert naming a component is worth, on the scale of rank_rules' scores (a component's best
# metric anomaly counts 0.6, notable logs up to 0.3). Only a subject with evidence of its own gets it.
SUBJECT_PRIOR = 0.2
NO_SUBJECT = ("", "unknown")


def alert_subject(incident: Incident, verdict: TriageVerdict | None) -> str:
    """What the alert is about: the affected service triage read, else the machine rather than an
    `instance` address with its exporter port, else the alert's own target."""
    alert = incident.alert
    if verdict is not None and verdict.service:
        return verdict.service
    if verdict is not None and verdict.host and alert.target == alert.labels.get("instance"):
        return verdict.host
    return alert.target


def has_evidence(items: Iterable[Evidence]) -> bool:
    """Anomalous evidence read from a tool; the alert itself is what is to be explained, not evidence."""
    return any(e.anomalous and e.tool != "alertmanager" and e.signal in ("metric", "log", "state", "memory")
               for e in items)


def subject_first(scores: Mapping[str, float], evidence: Mapping[str, list[Evidence]], subject: str,
                  remembered: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The ranking: components with evidence by score, and the subject in it.

    `scores` is each component's evidence score (without any prior). A component without evidence
    is dropped. The subject gets `SUBJECT_PRIOR` on top of its own score when it has evidence; with
    none it scores 0 and so comes after every component that has some (or, alone, the prior).
    """
    remembered = set(remembered)
    ranked = {c: s for c, s in scores.items()
              if c != subject and s > 0 and (c in remembered or has_evidence(evidence.get(c, [])))}
    if subject not in NO_SUBJECT or not ranked:
        own = subject in remembered or has_evidence(evidence.get(subject, []))
        # With no evidence of its own the subject scores 0 (after everything that has some), unless it
        # is alone: then it is the default hypothesis, worth the prior (its confidence stays capped by
        # the kinds of evidence behind it: the alert alone).
        ranked[subject] = (scores.get(subject, 0.0) + SUBJECT_PRIOR if own
                           else 0.0 if ranked else SUBJECT_PRIOR)
    return sorted(ranked.items(), key=lambda kv: (-kv[1], kv[0] != subject, kv[0]))
