"""Runbook and postmortem parsers (pure: files in, models out)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from memory.ingest import (
    awesome_alertname,
    find_postmortems,
    find_runbook_docs,
    parse_awesome_rules,
    parse_postmortem,
    parse_runbook_markdown,
)

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


RUNBOOK = """
---
title: Kube Pod Crash Looping
weight: 20
---

# KubePodCrashLooping

## Meaning

Pod is in CrashLoop which means the app dies.

## Impact

Service degradation or unavailability.

## Diagnosis

- Check pod events via `kubectl -n $NAMESPACE describe pod $POD`.

## Mitigation

Talk with developers.
"""


def test_runbook_sections_become_fields(tmp_path):
    doc = parse_runbook_markdown(_write(tmp_path / "runbooks/kubernetes/KubePodCrashLooping.md", RUNBOOK))
    assert doc is not None
    assert doc.id == "runbook:prometheus-operator:kubernetes/KubePodCrashLooping"
    assert doc.alertname == "KubePodCrashLooping" and doc.component == "kubernetes"
    assert doc.meaning.startswith("Pod is in CrashLoop") and "Impact: Service degradation" in doc.meaning
    assert "describe pod" in doc.diagnosis and doc.mitigation == "Talk with developers."
    assert doc.source == "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"


def test_stub_runbook_borrows_diagnosis_from_the_linked_one_and_index_pages_are_skipped(tmp_path):
    _write(tmp_path / "runbooks/node/NodeRAIDDegraded.md",
           "# NodeRAIDDegraded\n\n## Meaning\n\nRAID degraded.\n\n## Diagnosis\n\nmdadm --detail\n")
    stub = _write(tmp_path / "runbooks/node/NodeRAIDDiskFailure.md",
                  '# NodeRAIDDiskFailure\n\nSee [Node RAID Degraded]({{< ref "./NodeRAIDDegraded.md" >}})\n')
    _write(tmp_path / "runbooks/node/_index.md", "---\ntitle: node\n---\n")
    doc = parse_runbook_markdown(stub)
    assert doc is not None and doc.alertname == "NodeRAIDDiskFailure"
    assert doc.meaning == "See Node RAID Degraded." and doc.diagnosis == "mdadm --detail"
    docs, counts = find_runbook_docs(tmp_path)
    assert counts == {"prometheus-operator": 2, "awesome-prometheus-alerts": 0} and len(docs) == 2


def test_awesome_rules_alertnames_follow_the_generator_convention(tmp_path):
    assert awesome_alertname("Prometheus AlertManager E2E dead man switch") == "PrometheusAlertmanagerE2eDeadManSwitch"
    assert awesome_alertname("Host out of memory") == "HostOutOfMemory"
    rules = _write(tmp_path / "_data/rules.yml", """
        groups:
          - name: Basic resource monitoring
            services:
              - name: Host and hardware
                exporters:
                  - slug: node-exporter
                    rules:
                      - name: Host out of memory
                        description: "Node memory is filling up (< 10% left)"
                        query: 'node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < .10'
                        severity: warning
                        for: 2m
                        comments: Check the biggest processes.
        """)
    [doc] = parse_awesome_rules(rules)
    assert doc.alertname == "HostOutOfMemory" and doc.component == "Host and hardware"
    assert "filling up" in doc.meaning and "node_memory_MemAvailable_bytes" in doc.diagnosis
    assert doc.mitigation == "Check the biggest processes."
    assert doc.id == parse_awesome_rules(rules)[0].id  # deterministic


def test_postmortem_front_matter_and_body(tmp_path):
    path = _write(tmp_path / "data/0b1.md", """
        ---
        uuid: 0b1
        url: https://example.com/pm
        title: Storage outage
        categories:
        - hardware
        - cloud
        keywords:
        - power loss
        company: Acme
        product: Blob
        source_fetched_at: 2026-05-04T19:51:05.703409Z
        summary: Nodes lost power and the lock service overloaded.
        ---

        First paragraph.

        Engineers raised the timeout and restarted metadata nodes.
        """)
    rec = parse_postmortem(path)
    assert rec is not None and rec.id == "postmortem:0b1"
    assert rec.signature == "postmortem:cloud+hardware" and rec.service == "Blob"
    assert "power loss" in rec.symptoms and rec.root_cause.startswith("Nodes lost power")
    assert rec.recovered is True and rec.labels["occurred_at_known"] == "false"
    assert "restarted metadata nodes" in rec.actions[0]["text"]
    assert parse_postmortem(_write(tmp_path / "data/plain.md", "no front matter\n")) is None
    assert [r.id for r in find_postmortems(tmp_path)] == ["postmortem:0b1"]


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"datasets not found at {DATASETS}")
def test_real_corpora_parse_completely():
    docs, counts = find_runbook_docs(DATASETS / "prometheus-operator-runbooks")
    assert counts["prometheus-operator"] == 108  # every runbook file (the 9 _index.md pages skipped)
    assert len({d.id for d in docs}) == len(docs)
    awesome, counts = find_runbook_docs(DATASETS / "awesome-prometheus-alerts")
    assert counts["awesome-prometheus-alerts"] == 1155
    assert len({d.id for d in awesome}) == 1155  # ids unique although some alert names repeat
    records = find_postmortems(DATASETS / "postmortems-icco")
    assert len(records) == 242 and all(r.symptoms for r in records)
