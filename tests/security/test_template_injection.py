"""Finding 1: an alert label executed a command as root before any approval.

A `service` label of `{{ lookup('pipe', 'id > FILE') }}` became a catalog parameter, went into
Ansible extra vars, and Ansible templated it in the pre-flight `--check`. Two walls now stand in the
way, and each is tested on its own: the catalog refuses the value before planning ends, and - with
that wall bypassed - Ansible receives it marked `!unsafe` and never templates it, in --check nor in
a real run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.models import AlertmanagerWebhook
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory
from tools.ansible import AnsibleTool
from tools.catalog import CATALOG
from tools.params import ParameterRefused


def payload(marker: Path) -> str:
    return "{{ lookup('pipe', 'id > " + str(marker) + "') }}"


@pytest.mark.parametrize("check", [True, False], ids=["check", "real-run"])
def test_extra_vars_are_never_templated_even_without_validation(sandbox, tmp_path, check):
    inventory, _ = sandbox
    marker = tmp_path / "pwned"
    run = AnsibleTool(str(inventory)).run("restart_service.yml", "box", {"service": payload(marker)}, check=check)
    assert run.status == "successful", run.summary
    assert not marker.exists(), "Ansible templated an extra var: the lookup ran"
    assert "lookup('pipe'" in run.summary  # it reached the playbook as the literal text it was


def test_a_jinja_value_in_a_path_parameter_is_not_templated_either(sandbox, tmp_path):
    inventory, _ = sandbox
    marker = tmp_path / "pwned-path"
    run = AnsibleTool(str(inventory)).run(
        "cleanup_rotated_logs.yml", "box", {"path": "/var/log", "patterns": payload(marker), "older_than_days": 1},
        check=True, allowed_roots=["/var/log"])
    assert not marker.exists()
    assert run.status in ("successful", "failed")


@pytest.mark.parametrize("params", [
    {"service": "{{ lookup('pipe','id') }}"},
    {"service": "{% for x in y %}"},
    {"service": "nginx; rm -rf /"},
    {"service": "nginx$(id)"},
    {"service": "nginx`id`"},
    {"service": "nginx\nid"},
    {"service": "nginx\x00"},
    {"service": "../../bin/sh"},
    {"service": "-rf"},
])
def test_the_catalog_refuses_injection_in_any_parameter(params):
    with pytest.raises(ParameterRefused) as err:
        CATALOG["restart_service"].action("app-02", **params)
    assert err.value.parameter == "service" and err.value.reason


@pytest.mark.parametrize("target", ["{{ lookup('pipe','id') }}", "all", "*", "web-01;reboot", "a\nb", "", "-i"])
def test_the_catalog_refuses_a_target_that_is_not_a_host_name(target):
    with pytest.raises(ParameterRefused) as err:
        CATALOG["restart_service"].action(target, service="nginx")
    assert err.value.parameter == "target"


def _crashloop_alert(service: str, host: str = "localhost") -> AlertmanagerWebhook:
    return AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "{}:{alertname=\"ServiceCrashLooping\"}", "status": "firing",
        "alerts": [{"status": "firing", "startsAt": "2026-03-11T09:09:00Z", "annotations": {"summary": "crash loop"},
                    "labels": {"alertname": "ServiceCrashLooping", "service": service, "host": host,
                               "severity": "critical"}}]})


def test_an_alert_label_never_runs_before_approval_and_the_plan_says_why(settings, tmp_path):
    """The issue's reproduction, end to end in rule mode with nothing configured."""
    marker = tmp_path / "pwned-e2e"

    async def go():
        async with IncidentRunner(settings, make_toolbox_factory(settings)) as runner:
            return await runner.analyze(_crashloop_alert(payload(marker)), {"kind": "live"})

    outcome = asyncio.run(go())
    assert not marker.exists(), "the label's lookup ran during planning/pre-flight"
    plan = outcome.report.plan
    assert plan is not None and [a.name for a in plan.actions] == ["escalate_to_oncall"]
    assert "refused" in plan.rationale and "template marker" in plan.rationale
    assert not any(e.status == "ok" for e in outcome.report.executions)
