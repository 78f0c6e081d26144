"""Generated playbooks (issue 11): a model's own playbook is vetted step by step before a human sees it.

A good one passes YAML, modules, Jinja, become, hosts, syntax-check, ansible-lint and a real
`--check --diff` (ansible-runner against `localhost`, named explicitly in a temp INI inventory with
`ansible_connection=local`, writing only into a temp sandbox), and its diff is in the plan's checks.
Each bad one is refused at the step that catches it, with the reason; a model that proposes a
malicious one gets an escalation and nothing runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.approval import auto_approval
from agents.remediation import is_escalation, plan, preflight
from agents.toolbox import Toolbox
from core.models import AlertmanagerWebhook, Diagnosis, Hypothesis, Risk, TriageVerdict
from core.settings import load_settings
from graphs.incident import incident_from_webhook
from service.runner import IncidentRunner
from service.toolbox_factory import make_toolbox_factory, replay_spec
from tests.conftest import recording, scripted_chain
from tests.scripted_model import ScriptedChatModel, reply, tool_call
from tests.security.local_hosts import write_inventory
from tools.ansible import generated
from tools.catalog import CATALOG
from tools.executor import ActionExecutor
from tools.params import ParameterRefused
from tools.replay.recording import load_recorded

ENTRY = CATALOG["run_generated_playbook"]
LABELS = {"alertname": "HostOutOfDiskSpace", "instance": "localhost:9100", "job": "node", "mountpoint": "/"}
VERDICT = TriageVerdict(kind="incident", category="disk", reason="r", domain="host", host="localhost",
                        exporter="node")


def good(sandbox: Path, host: str = "localhost") -> str:
    return f"""---
- name: Leave a marker for the on-call
  hosts: {host}
  gather_facts: false
  tasks:
    - name: Write the marker file
      ansible.builtin.copy:
        dest: {sandbox}/marker.txt
        content: "hello from aiops\\n"
        mode: "0644"
"""


@pytest.fixture
def box(tmp_path: Path) -> tuple[ActionExecutor, Path]:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    inventory = write_inventory(tmp_path / "inventory.ini", {"localhost": sandbox, "other-01": None})
    with inventory.open("a") as f:
        f.write("[web]\nother-01\n")
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", ENABLE_MEMORY=False)
    return ActionExecutor(settings, str(inventory), infrastructure=False), sandbox


def _plan(executor: ActionExecutor, *steps: dict):
    model = ScriptedChatModel(script=[reply(tool_call("RemediationPlan", rationale="my own fix", steps=list(steps)))])
    wh = AlertmanagerWebhook.model_validate({
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
        "alerts": [{"status": "firing", "labels": LABELS, "annotations": {}, "startsAt": "2026-03-10T03:45:00Z"}]})
    toolbox = Toolbox(llm=scripted_chain(model), settings=executor.settings, executor=executor)
    diag = Diagnosis(hypotheses=[Hypothesis(component="localhost", cause="disk fills", confidence=0.6)])

    async def go():
        p, _ = await plan(incident_from_webhook(wh), VERDICT, diag, [], toolbox, [])
        if not is_escalation(p):
            p.checks = await preflight(p, toolbox)
        return p
    return asyncio.run(go())


def test_a_good_generated_playbook_passes_every_step_and_its_diff_is_shown(box):
    executor, sandbox = box
    p = _plan(executor, {"action": "run_generated_playbook", "target": "localhost",
                         "parameters": {"playbook": good(sandbox)}})
    assert [a.name for a in p.actions] == ["run_generated_playbook"] and p.risk == Risk.HIGH
    checks = "\n".join(p.checks)
    assert "syntax-check: ok" in checks and "ansible-lint: passed" in checks
    assert "--check --diff on localhost: " in checks and "changed=1" in checks
    assert f"+++ after: {sandbox}/marker.txt" in checks and "+hello from aiops" in checks
    assert not (sandbox / "marker.txt").exists(), "--check changed nothing"
    assert auto_approval(p, executor.settings) is None, "never auto-approved"
    other = p.model_copy(update={"actions": [p.actions[0].model_copy(update={"parameters": {
        "playbook": good(sandbox).replace("hello", "bye")}})]})
    assert other.content_hash != p.content_hash, "the playbook text is part of the content hash"
    # Approved: the same guarded runner runs it (for real, into the sandbox).
    done = executor.execute(p.actions[0], plan_id=p.id)
    assert done.status == "ok", done.output
    assert (sandbox / "marker.txt").read_text() == "hello from aiops\n"


@pytest.mark.parametrize(("text", "step", "reason"), [
    ("- hosts: localhost\n  tasks: [\n", "yaml", "not valid YAML"),
    ("- &a {hosts: localhost}\n- *a\n", "yaml", "aliases"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: Own it\n      ansible.builtin.shell: id > /tmp/x\n",
     "modules", "ansible.builtin.shell is not allow-listed"),
    ("- name: P\n  hosts: localhost\n  roles: [evil]\n  tasks: []\n", "modules", "play keyword 'roles'"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: Steal\n      ansible.builtin.copy: {src: /etc/shadow, "
     "dest: /tmp/s, mode: '0600'}\n", "modules", "option 'src'"),
    ("- name: P\n  hosts: localhost\n  vars: {ansible_connection: local}\n  tasks: []\n", "modules",
     "variable 'ansible_connection' is not allowed"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: T\n      vars: {ansible_python_interpreter: /bin/sh}\n"
     "      ansible.builtin.debug: {msg: hi}\n", "modules", "variable 'ansible_python_interpreter'"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: T\n      ansible.builtin.copy: dest=/tmp/a content=b "
     "validate='id %s'\n", "modules", "option 'validate'"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: T\n      when: lookup('pipe', 'id')\n"
     "      ansible.builtin.debug: {msg: hi}\n", "modules", "task keyword 'when' is not allowed"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: T\n      ansible.builtin.debug:\n"
     "        msg: \"{{ lookup('pipe', 'id') }}\"\n", "jinja", "template marker '{{'"),
    ("- name: P\n  hosts: localhost\n  tasks:\n    - name: T\n      ansible.builtin.debug: {msg: '{% if 1 %}x{% endif %}'}\n",
     "jinja", "template marker '{%'"),
    ("- name: P\n  hosts: localhost\n  become: true\n  tasks:\n    - name: T\n      ansible.builtin.debug: {msg: hi}\n",
     "become", "privilege escalation is not declared"),
    ("- name: P\n  hosts: all\n  tasks:\n    - name: T\n      ansible.builtin.debug: {msg: hi}\n",
     "hosts", "'all' means every host"),
    ("- name: P\n  hosts: 'web:&db'\n  tasks: []\n", "hosts", "is a host pattern"),
    ("- name: P\n  hosts: other-01\n  tasks:\n    - name: T\n      ansible.builtin.debug: {msg: hi}\n",
     "hosts", "'other-01' is not the incident's target (localhost)"),
])
def test_each_bad_playbook_is_refused_at_its_step(text, step, reason):
    with pytest.raises(ParameterRefused) as caught:
        ENTRY.action("localhost", playbook=text)
    assert f"refused at {step}: " in str(caught.value) and reason in str(caught.value)


def test_a_syntax_error_is_refused_by_ansible_playbook(box):
    executor, sandbox = box
    text = good(sandbox).replace("  gather_facts: false\n", "  gather_facts: false\n  vars: [1, 2]\n")
    vetting = executor.vet(ENTRY.action("localhost", playbook=text))  # steps 1-5 pass
    assert not vetting.ok and vetting.refused.startswith("syntax-check: ")
    assert "Vars in a Play must be specified as a dictionary" in vetting.refused


def test_an_ansible_lint_failure_is_refused(box):
    executor, sandbox = box
    vetting = executor.vet(ENTRY.action("localhost", playbook=good(sandbox).replace(
        '        mode: "0644"\n', "")))
    assert not vetting.ok and vetting.refused.startswith("ansible-lint: risky-file-permissions")


def test_ansible_lint_that_cannot_run_says_so(monkeypatch):
    monkeypatch.setattr(generated, "_ansible_lint", lambda: "/nonexistent/ansible-lint")
    with pytest.raises(generated.GeneratedPlaybookRefused, match=r"could not run \(infrastructure\): ansible-lint "
                                                                 "is not installed"):
        generated.ansible_lint(good(Path("/tmp")))


def test_a_group_or_a_host_outside_the_incident_is_never_offered(box):
    executor, sandbox = box
    group = executor.vet(ENTRY.action("web", playbook=good(sandbox, host="web")))
    assert not group.ok and group.refused == "hosts: 'web' is an inventory group, not one host"
    p = _plan(executor, {"action": "run_generated_playbook", "target": "other-01",
                         "parameters": {"playbook": good(sandbox, host="other-01")}})
    assert is_escalation(p)
    # refused before vetting: the model named a host the incident never named nor observed (issue 16.4)
    assert "refused: run_generated_playbook: host 'other-01' is neither named by the alert nor observed" in p.rationale


def test_a_model_proposing_a_malicious_playbook_gets_an_escalation_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    settings = load_settings(AIOPS_DATA_DIR=tmp_path / "var", VERIFY_SETTLE_SECONDS=0, ENABLE_MEMORY=False)
    evil = (f"- name: Maintenance\n  hosts: app-02\n  tasks:\n    - name: Run it\n"
            f"      ansible.builtin.shell: \"id > {marker}\"\n")
    model = ScriptedChatModel(script=[
        reply(tool_call("Diagnosis", hypotheses=[{"component": "payments-api", "cause": "config.yaml fails to parse",
                                                   "confidence": 0.9, "evidence_ids": ["ev-1"]}])),
        reply(tool_call("RemediationPlan", rationale="my own fix", steps=[
            {"action": "run_generated_playbook", "target": "app-02", "parameters": {"playbook": evil}}]))])
    path = recording("crashloop")

    async def go():
        rec = load_recorded(path)
        async with IncidentRunner(settings, make_toolbox_factory(settings, llm=scripted_chain(model))) as runner:
            return await runner.analyze(rec.webhook, replay_spec(path, settings))
    out = asyncio.run(go())
    p = out.report.plan
    assert [a.name for a in p.actions] == ["escalate_to_oncall"]
    assert "generated playbook refused at modules: module ansible.builtin.shell is not allow-listed" in p.rationale
    assert out.status.value == "escalated" and not marker.exists()
    assert all(e.action == "escalate_to_oncall" for e in out.report.executions)
