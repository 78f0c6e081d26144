"""Turn public runbook and postmortem corpora into `RunbookDoc`s and `IncidentRecord`s.

Parsers are pure (files in, models out) so they are tested without Milvus; `ingest_*` write them.
Ids are derived from the source path and name only, so re-running an ingest upserts the same rows
and adds no duplicates.

Supported layouts (found anywhere under the given directory):
* prometheus-operator/runbooks: `runbooks/<component>/<AlertName>.md` with `## Meaning`,
  `## Impact`, `## Diagnosis`, `## Mitigation` sections (`_index.md` files are skipped);
* samber/awesome-prometheus-alerts: `_data/rules.yml` (groups -> services -> exporters -> rules);
* icco/postmortems: `data/<uuid>.md` with YAML front matter (title, company, product, categories,
  keywords, summary) and a prose body.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from memory.incidents import IncidentMemory
from memory.records import IncidentRecord, RunbookDoc, split_camel

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?(.*)\Z", re.S)
_SECTION = re.compile(r"^##\s+(.+?)\s*$", re.M)
_RUNBOOK_SECTIONS = {"meaning", "impact", "diagnosis", "mitigation"}
PROMETHEUS_OPERATOR_RUNBOOKS_URL = "https://runbooks.prometheus-operator.dev/runbooks"


class IngestError(ValueError):
    """The directory holds nothing this ingest understands."""


def _split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    match = _FRONT.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        meta = {}
    return (meta if isinstance(meta, dict) else {}), match.group(2)


def _sections(body: str) -> dict[str, str]:
    """`## Heading` -> text until the next `##` heading (lower-cased heading names)."""
    out: dict[str, str] = {}
    matches = list(_SECTION.finditer(body))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        out[m.group(1).strip().lower()] = body[m.end() : end].strip()
    return out


def _stable_id(prefix: str, *parts: str) -> str:
    key = "/".join(parts)
    if len(prefix) + len(key) <= 120:
        return f"{prefix}{key}"
    return f"{prefix}{hashlib.sha1(key.encode()).hexdigest()[:24]}"


# --- prometheus-operator runbooks -----------------------------------------------------------------


def parse_runbook_markdown(path: Path) -> RunbookDoc | None:
    """One prometheus-operator runbook file, or None when the file is not a runbook."""
    if path.name.startswith("_"):
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    _, body = _split_front_matter(text)
    sections = _sections(body)
    heading = re.search(r"^#\s+(\S+)\s*$", body, re.M)
    if not (_RUNBOOK_SECTIONS & sections.keys()):
        # a stub runbook ("See [Node RAID Degraded]({{< ref "./NodeRAIDDegraded.md" >}})"): follow the
        # reference once, else keep the prose itself as the meaning
        if heading is None or heading.group(1).strip().lower() != path.stem.lower():
            return None
        rest = body[heading.end() :].strip()
        ref = re.search(r"\./([A-Za-z0-9_-]+)\.md", rest)
        target = path.parent / f"{ref.group(1)}.md" if ref else None
        if target is not None and target.is_file() and target != path:
            # the referenced runbook's diagnosis and mitigation apply; its meaning is another alert's
            linked = _sections(_split_front_matter(target.read_text(encoding="utf-8", errors="replace"))[1])
            see = f"See {split_camel(ref.group(1))}." if ref else ""
            sections = {"meaning": see, "diagnosis": linked.get("diagnosis", ""),
                        "mitigation": linked.get("mitigation", "")}
        elif len(rest) < 300:
            sections = {"meaning": rest}
        else:
            sections = {"diagnosis": rest}  # a how-to without headings
    alertname = path.stem  # the file name is what runbook_url points at
    component = path.parent.name
    meaning = sections.get("meaning", "")
    if sections.get("impact"):
        meaning = f"{meaning}\n\nImpact: {sections['impact']}".strip()
    return RunbookDoc(
        id=_stable_id("runbook:prometheus-operator:", component, path.stem),
        alertname=alertname,
        component=component,
        meaning=meaning,
        diagnosis=sections.get("diagnosis", ""),
        mitigation=sections.get("mitigation", ""),
        source=f"{PROMETHEUS_OPERATOR_RUNBOOKS_URL}/{component}/{path.stem.lower()}",
    )


def iter_prometheus_operator_runbooks(root: Path) -> Iterator[RunbookDoc]:
    for path in sorted(root.rglob("*.md")):
        if "postmortem" in str(path).lower():
            continue
        doc = parse_runbook_markdown(path)
        if doc is not None:
            yield doc


# --- awesome-prometheus-alerts ---------------------------------------------------------------------


def awesome_alertname(name: str) -> str:
    """The alert name awesome-prometheus-alerts generates: `Prometheus TSDB reload failures` ->
    `PrometheusTsdbReloadFailures` (each word capitalised, punctuation dropped)."""
    return "".join(w.capitalize() for w in re.split(r"[^A-Za-z0-9]+", name) if w)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def parse_awesome_rules(path: Path) -> list[RunbookDoc]:
    """Every rule of `_data/rules.yml` as a (thin) runbook: description, query and comments."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    docs: list[RunbookDoc] = []
    for group in data.get("groups") or []:
        for service in group.get("services") or []:
            sname = str(service.get("name") or "")
            for exporter in service.get("exporters") or []:
                eslug = str(exporter.get("slug") or exporter.get("name") or "default")
                for rule in exporter.get("rules") or []:
                    name = str(rule.get("name") or "").strip()
                    if not name:
                        continue
                    alertname = awesome_alertname(name)
                    comments = str(rule.get("comments") or "").strip()
                    diagnosis = f"Query: {rule.get('query', '')}"
                    if rule.get("for"):
                        diagnosis += f" (for {rule['for']})"
                    docs.append(
                        RunbookDoc(
                            id=_stable_id("runbook:awesome:", _slug(sname), eslug, alertname),
                            alertname=alertname,
                            component=sname,
                            meaning=f"{name}. {rule.get('description', '')}".strip(),
                            diagnosis=diagnosis,
                            mitigation=comments,
                            source=f"https://samber.github.io/awesome-prometheus-alerts/rules#{_slug(sname)}",
                        )
                    )
    return docs


def find_runbook_docs(root: Path) -> tuple[list[RunbookDoc], dict[str, int]]:
    """All runbooks under `root` (either corpus or both), deduplicated by id, and per-corpus counts."""
    po = list(iter_prometheus_operator_runbooks(root))
    awesome: list[RunbookDoc] = []
    for rules in sorted(root.rglob("rules.yml")):
        if rules.parent.name == "_data":
            awesome.extend(parse_awesome_rules(rules))
    docs = list({d.id: d for d in po + awesome}.values())
    return docs, {"prometheus-operator": len(po), "awesome-prometheus-alerts": len(awesome)}


# --- postmortems ---------------------------------------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def parse_postmortem(path: Path) -> IncidentRecord | None:
    """An icco/postmortems file as a past incident (None when it has no front matter).

    The corpus has no alert, so `alertname` is empty and `signature` is `postmortem:<categories>`;
    symptoms are title + keywords + summary, the root cause is the summary (the corpus does not
    separate the two), and the prose body's last paragraphs are kept as one `report` action.
    `occurred_at` is the front matter's `start_time` where there is one; otherwise the fetch time
    stands in, flagged by the label `occurred_at_known=false`. Files without a summary use the
    body's first paragraph.
    """
    meta, body = _split_front_matter(path.read_text(encoding="utf-8", errors="replace"))
    paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if p.strip()]
    if not meta or not (meta.get("summary") or meta.get("title") or paragraphs):
        return None
    # YAML reads some uuids as numbers (0b1 -> 1, 1e10 -> float): trust only a string, else the file name
    uid = meta["uuid"] if isinstance(meta.get("uuid"), str) and meta["uuid"] else path.stem
    categories = sorted(_as_list(meta.get("categories")))
    keywords = _as_list(meta.get("keywords"))
    title = str(meta.get("title") or "").strip()
    # about a fifth of the files have no summary: the first paragraph of the body stands in
    summary = " ".join(str(meta.get("summary") or "").split()) or (paragraphs[0][:600] if paragraphs else "")
    company = str(meta.get("company") or "").strip()
    product = str(meta.get("product") or "").strip()
    occurred, known = _timestamp(meta.get("start_time")), True
    if occurred is None:
        occurred, known = _timestamp(meta.get("source_fetched_at")), False
    remediation = " ".join(paragraphs[1:][-2:])[:2000]
    return IncidentRecord(
        id=f"postmortem:{uid}",
        signature="postmortem:" + ("+".join(categories) or "uncategorised"),
        alertname="",
        service=product or company,
        symptoms=" ".join(p for p in (f"{title}." if title else "",
                                      f"Keywords: {', '.join(keywords)}." if keywords else "", summary) if p),
        labels={
            "company": company,
            "product": product,
            "categories": ",".join(categories),
            "url": str(meta.get("url") or ""),
            "occurred_at_known": "true" if known else "false",
        },
        root_cause_component=product or company,
        root_cause=summary,
        actions=[{"kind": "report", "text": remediation}] if remediation else [],
        recovered=True,
        occurred_at=occurred or datetime.fromtimestamp(0, tz=UTC),
        source="postmortems-icco",
    )


def find_postmortems(root: Path) -> list[IncidentRecord]:
    out = []
    for path in sorted(root.rglob("*.md")):
        if path.name.upper().startswith(("README", "LICENSE")):
            continue
        rec = parse_postmortem(path)
        if rec is not None:
            out.append(rec)
    return list({r.id: r for r in out}.values())


# --- writers -------------------------------------------------------------------------------------


def _check_dir(root: Path) -> None:
    if not root.exists():
        raise IngestError(f"{root}: no such directory")
    if not root.is_dir():
        raise IngestError(f"{root}: not a directory")


def ingest_runbooks(memory: IncidentMemory, root: Path) -> dict[str, int]:
    _check_dir(root)
    docs, per_corpus = find_runbook_docs(root)
    if not docs:
        raise IngestError(f"{root}: no prometheus-operator runbooks (*.md with ## Meaning) or _data/rules.yml found")
    written = memory.add_runbooks(docs)
    return {**per_corpus, "written": written, "total": memory.counts()["runbooks"]}


def ingest_postmortems(memory: IncidentMemory, root: Path) -> dict[str, int]:
    _check_dir(root)
    records = find_postmortems(root)
    if not records:
        raise IngestError(f"{root}: no postmortem markdown files with YAML front matter found")
    written = memory.remember_many(records)
    return {"postmortems": len(records), "written": written, "total": memory.counts()["incidents"]}
