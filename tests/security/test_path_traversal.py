"""Finding 2: `config_path` with `/../../..` made rollback_config overwrite a file outside the sandbox.

The catalog refuses the value (absolute, no `..`, under the declared roots after normalisation), and
the playbooks no longer glue paths together: with the catalog bypassed, a `..` path, or a symlink
inside the sandbox that points out of it, is refused by the playbook before anything is written.
Post-mortem copies (`.failed-<run id>`) are never overwritten.
"""

from __future__ import annotations

import pytest

from tools.ansible import AnsibleTool
from tools.ansible.entries import CONFIG_ROOTS
from tools.catalog import CATALOG
from tools.params import ParameterRefused


@pytest.mark.parametrize("config_path, reason", [
    ("/etc/app/../../../../outside/app.conf", "'..'"),
    ("/../outside/app.conf", "'..'"),
    ("etc/app.conf", "absolute"),
    ("/home/user/.bashrc", "not under"),
    ("/etc/app.conf;id", "metacharacter"),
    ("/etc/app conf", "metacharacter"),
    ("/etc/{{x}}", "template marker"),
])
def test_the_catalog_refuses_paths_outside_its_roots(config_path, reason):
    with pytest.raises(ParameterRefused) as err:
        CATALOG["rollback_config"].action("app-02", service="app", config_path=config_path)
    assert reason in str(err.value)


def test_the_catalog_normalises_what_it_accepts():
    a = CATALOG["rollback_config"].action("app-02", service="app", config_path="/etc//app/./config.yaml")
    assert a.parameters["config_path"] == "/etc/app/config.yaml"
    assert CATALOG["cleanup_rotated_logs"].action("h", path="/var/log/").parameters["path"] == "/var/log"
    with pytest.raises(ParameterRefused, match="not under"):
        CATALOG["cleanup_rotated_logs"].action("h", path="/")


def _outside_victim(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "app.conf"
    victim.write_text("precious\n")
    (outside / "app.conf.last-good").write_text("attacker's content\n")
    return victim


def test_rollback_playbook_refuses_dotdot_even_when_validation_is_bypassed(sandbox, tmp_path):
    inventory, root = sandbox  # root = tmp_path/box, so /../outside/app.conf is tmp_path/outside/app.conf
    victim = _outside_victim(tmp_path)
    run = AnsibleTool(str(inventory)).run("rollback_config.yml", "box",
                                          {"service": "app", "config_path": "/../outside/app.conf"},
                                          allowed_roots=list(CONFIG_ROOTS))
    assert run.status == "failed" and "refused" in run.summary
    assert victim.read_text() == "precious\n"
    assert not list(victim.parent.glob("app.conf.failed*"))
    from core.resilience import breaker  # a task that fails on a host that answered is not the host's fault

    assert breaker("ansible:box").state == "closed" and breaker("ansible:box").total_failures == 0


def test_rollback_playbook_refuses_a_symlink_out_of_the_sandbox(sandbox, tmp_path):
    inventory, root = sandbox
    victim = _outside_victim(tmp_path)
    (root / "etc").mkdir()
    (root / "etc" / "app").symlink_to(victim.parent)  # /etc/app on the stand-in host leads outside it
    a = CATALOG["rollback_config"].action("box", service="app", config_path="/etc/app/app.conf")  # valid text
    run = AnsibleTool(str(inventory)).run("rollback_config.yml", "box", dict(a.parameters),
                                          allowed_roots=list(CONFIG_ROOTS))
    assert run.status == "failed" and "refused" in run.summary
    assert victim.read_text() == "precious\n"


def test_cleanup_playbook_refuses_a_directory_outside_the_sandbox(sandbox, tmp_path):
    inventory, root = sandbox
    outside = tmp_path / "outside-logs"
    outside.mkdir()
    (outside / "old.gz").write_bytes(b"x")
    run = AnsibleTool(str(inventory)).run(
        "cleanup_rotated_logs.yml", "box", {"path": "/../outside-logs", "patterns": "*.gz", "older_than_days": 0},
        allowed_roots=["/var/log"])
    assert run.status == "failed" and (outside / "old.gz").exists()


def test_post_mortem_copies_are_never_overwritten(sandbox):
    inventory, root = sandbox
    conf = root / "etc" / "app" / "config.yaml"
    conf.parent.mkdir(parents=True)
    (conf.parent / "config.yaml.last-good").write_text("good\n")
    tool = AnsibleTool(str(inventory))
    for bad in ("first bad\n", "second bad\n"):
        conf.write_text(bad)
        run = tool.run("rollback_config.yml", "box", {"service": "app", "config_path": "/etc/app/config.yaml"},
                       allowed_roots=list(CONFIG_ROOTS))
        assert run.status == "successful", run.summary
        assert conf.read_text() == "good\n"
    copies = sorted(conf.parent.glob("config.yaml.failed*"))
    assert sorted(p.read_text() for p in copies) == ["first bad\n", "second bad\n"]
