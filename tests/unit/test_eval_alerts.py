"""The labelled real-alert suite: the data file is well-formed and matches its documented selection, and a
small slice runs end to end through the product with no wrong automatic action."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from agents.understanding import CATEGORIES
from evals.alert_catalogue import load_catalogue
from evals.suites.alerts import ISSUE_12, NAMED, load_labels, run, select_rules, split_of, summary_table
from tools.catalog import CATALOG

DATA = Path(os.environ.get("DATASETS_DIR", Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"))


def test_label_file_is_well_formed():
    labels = load_labels()
    assert len(labels) >= 200 and len({lab.alertname for lab in labels}) == len(labels)
    outcomes = set(CATALOG) - {"escalate_to_oncall"} | {"escalate", "noise"}
    for lab in labels:
        assert lab.category in CATEGORIES, lab
        assert lab.acceptable and set(lab.acceptable) <= outcomes, lab
        assert lab.split == split_of(lab.alertname) and lab.note
    assert set(NAMED) <= {lab.alertname for lab in labels}
    assert all("escalate" in lab.acceptable for lab in labels if lab.alertname in ISSUE_12)
    split = Counter(lab.split for lab in labels)
    assert split["dev"] >= 80 and split["heldout"] >= 80


def test_labels_are_the_documented_sample_of_every_group():
    try:
        rules = load_catalogue(DATA)
    except FileNotFoundError:
        pytest.skip(f"awesome-prometheus-alerts not found under {DATA} (set DATASETS_DIR)")
    assert len(rules) == 1155
    labels = load_labels()
    assert [lab.alertname for lab in labels] == [r.alertname for r in select_rules(rules)]
    assert {lab.group for lab in labels} == {r.group for r in rules}


def test_small_slice_through_the_product(settings):
    if not (DATA / "awesome-prometheus-alerts").is_dir():
        pytest.skip(f"awesome-prometheus-alerts not found under {DATA}")
    only = [*ISSUE_12, "HostSystemdServiceCrashed", "HostOutOfDiskSpace", "KubernetesPodCrashLooping",
            "PostgresqlDown", "PrometheusAlertmanagerE2eDeadManSwitch"]
    report = run(DATA, "all", settings=settings, only=only)
    assert report["catalogue_rules"] == len(only)
    lab = report["labelled"]
    labelled = {x.alertname for x in load_labels()} & set(only)
    assert lab["rules"] == len(labelled) >= 5 and lab["wrong_automatic_actions"] == 0 and lab["automatic_actions"] == 0
    assert all(v["outcome"] == "escalate" and not v["automatic"] for v in report["issue_12"].values())
    cases = {c["alertname"]: c for c in lab["cases"]}
    assert cases["HostSystemdServiceCrashed"]["actions"] == ["restart_service nginx on web-01"]
    assert cases["HostOutOfDiskSpace"]["outcome"] == "cleanup_rotated_logs"  # a suggestion, not automatic
    cov = report["coverage"]
    assert cov["rules"] == len(only) and cov["automatic_actions"] == 0
    assert "coverage of all 8 rules" in summary_table(report)
