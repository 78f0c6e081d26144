"""The runbooks eval: alerts built as Alertmanager would send them, without the answer in the query."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.suites.runbooks import build_alert, cli, load_cases, query_text, render_template

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_render_template_covers_the_forms_alert_rules_use():
    labels = {"namespace": "shop", "pod": "api-1", "cluster": "prod"}
    assert render_template("Pod {{ $labels.namespace }}/{{$labels.pod}} down", labels, 3) == "Pod shop/api-1 down"
    assert render_template("{{ $value | humanizePercentage }} free", labels, 0.0734) == "7.34% free"
    assert render_template('{{ printf "%.2f" $value }} errors', labels, 3) == "3.00 errors"
    assert render_template("up {{ $value | humanizeDuration }}", labels, 3725) == "up 1h 2m 5s"
    assert render_template('{{ "43200" | humanizeDuration }}', labels, 1) == "12h 0m 0s"
    text = "in ns {{ $labels.namespace }} {{ with $labels.cluster -}} on Cluster {{ . }} {{- end }} is full."
    assert render_template(text, labels, 1) == "in ns shop on Cluster prod is full."
    assert render_template(text, {"namespace": "shop"}, 1) == "in ns shop is full."


def test_alert_hides_runbook_url_and_alertname_from_the_query():
    rule = {
        "alert": "KubePodCrashLooping",
        "expr": 'max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff", '
                'job="kube-state-metrics"}[5m]) >= 1',
        "labels": {"severity": "warning"},
        "annotations": {
            "description": 'Pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is in '
                           'waiting state (reason: "CrashLoopBackOff").',
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
            "summary": "Pod is crash looping.",
        },
    }
    case = build_alert(rule, "x.yaml")
    assert case.labels["alertname"] == "KubePodCrashLooping" and case.labels["severity"] == "warning"
    assert case.labels["job"] == "kube-state-metrics" and case.labels["pod"]
    assert "runbook_url" not in case.annotations and case.runbook_url.endswith("kubepodcrashlooping")
    q = query_text(case)
    assert "{{" not in q and "KubePodCrashLooping" not in q and "runbooks.prometheus-operator.dev" not in q
    assert "Pod is crash looping." in q


@pytest.mark.skipif(not DATASETS.is_dir(), reason=f"datasets not found at {DATASETS}")
def test_the_corpus_has_112_rule_runbook_pairs():
    cases, _ = load_cases(DATASETS)
    assert len(cases) == 112
    assert all("{{" not in query_text(c) and c.alertname not in query_text(c) for c in cases)


def test_cli_bad_data_dir_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a directory" in err
    assert cli(["--data", str(tmp_path)]) == 2
    assert "kube-prometheus-rules" in capsys.readouterr().err


def test_splits_are_fixed_by_alert_name_and_cover_every_case():
    from evals.suites.runbooks import split_of

    if not (DATASETS / "kube-prometheus-rules").is_dir():
        pytest.skip("shared datasets not present")
    cases, _ = load_cases(DATASETS)
    splits = {c.alertname: split_of(c.alertname) for c in cases}
    n_dev = sum(1 for c in cases if splits[c.alertname] == "dev")
    assert (n_dev, len(cases) - n_dev) == (65, 47)


def test_a_rule_catalogue_entry_is_told_from_a_runbook():
    from memory.records import RunbookDoc, is_rule_entry

    rule = RunbookDoc(id="a", alertname="KubernetesPodCrashLooping", meaning="Pod is crash looping",
                      diagnosis="Query: increase(kube_pod_container_status_restarts_total[1m]) > 3 (for 2m)")
    assert is_rule_entry(rule)
    assert not is_rule_entry(rule.model_copy(update={"mitigation": "Check the logs of the previous container."}))
    assert not is_rule_entry(RunbookDoc(id="b", alertname="KubePodCrashLooping", meaning="m",
                                        diagnosis="Check the pod's events", mitigation=""))
    assert not is_rule_entry(RunbookDoc(id="c", alertname="X", meaning="only a meaning"))
