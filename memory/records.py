"""What memory keeps, and the texts embedded from it: incident records and runbooks.

Pure models and text shaping (no Milvus, no embedder): `memory/incidents.py` stores and searches
them, `memory/ingest.py` builds them from public corpora, the agents read the matches.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

# --- public models -------------------------------------------------------------------------------


class IncidentRecord(BaseModel):
    """A resolved (or at least closed) incident as it is remembered."""

    id: str
    signature: str
    alertname: str
    service: str
    symptoms: str
    labels: dict[str, str] = Field(default_factory=dict)
    root_cause_component: str = ""
    root_cause: str = ""
    actions: list[dict[str, Any]] = Field(default_factory=list)
    recovered: bool | None = None
    occurred_at: datetime
    source: str = "aiops"
    # How a person closed it (`aiops close`, POST .../close): "closed by alice: <reason>". Kept in the
    # actions JSON field beside the items, so older collections need no new column.
    resolution: str = ""


class IncidentMatch(BaseModel):
    record: IncidentRecord
    score: float  # cosine similarity of the query to the incident text, -1..1


class RunbookDoc(BaseModel):
    """One runbook: what the alert means, how to diagnose it, how to mitigate it, and where it came from."""

    id: str
    alertname: str
    component: str = ""
    meaning: str = ""
    diagnosis: str = ""
    mitigation: str = ""
    source: str = ""


class RunbookMatch(BaseModel):
    doc: RunbookDoc
    score: float  # hybrid: cosine + weighted, max-normalised BM25 of title and body (see search_runbooks)


# --- text shaping ---------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def split_camel(name: str) -> str:
    """`KubePodCrashLooping` -> `Kube Pod Crash Looping` (alert names read as words)."""
    return _CAMEL.sub(" ", name)


def incident_text(record: IncidentRecord) -> str:
    """What is embedded for an incident: what it looked like, not what caused it.

    A new alert only knows its symptoms, so symptoms, alert and service make the vector; the root
    cause would pull unrelated-looking incidents together.
    """
    head = " ".join(p for p in (split_camel(record.alertname), record.service) if p)
    return f"{head}: {record.symptoms}" if head else record.symptoms


def runbook_dense_text(doc: RunbookDoc) -> str:
    """Title and meaning: what an alert's summary/description paraphrase. The diagnosis (kubectl
    recipes, shared by many runbooks) only stands in when a runbook has no meaning section."""
    body = doc.meaning if len(doc.meaning) >= 40 else f"{doc.meaning} {doc.diagnosis[:500]}"
    return f"{split_camel(doc.alertname)}. {body}".strip()


def runbook_title_text(doc: RunbookDoc) -> str:
    return split_camel(doc.alertname)


def is_rule_entry(doc: RunbookDoc) -> bool:
    """An alert rule's catalogue entry rather than a runbook: its only diagnosis is the rule's query
    (`Query: ...`, as `memory.ingest.parse_awesome_rules` writes it) and it has no mitigation text."""
    return doc.diagnosis.lstrip().startswith("Query:") and not doc.mitigation.strip()


def runbook_body_text(doc: RunbookDoc) -> str:
    return f"{doc.component} {doc.meaning} {doc.diagnosis} {doc.mitigation}"
