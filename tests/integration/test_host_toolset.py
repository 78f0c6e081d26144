"""The host toolset (Ansible) against a local stand-in host: the real ansible-playbook reads the host's
disk items and a unit one by one, and runs the host fixes (a journal vacuum, the real `apt-get clean`,
a unit restart, a rotated-log cleanup), each then read back by verification.

A stand-in host is a sandbox directory driven with `connection: local` (tools/replay/standins.py); it
has no service manager, so a unit's state is the JSON `systemctl show` would print, kept where the
read playbook looks and the restart playbook writes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.models import ExecutionResult
from tools.ansible.reads import ReadLimits
from tools.ansible.toolset import TOOLSET, AnsibleClient
from tools.catalog import CATALOG
from tools.replay.recording import SandboxFile, StandInHost
from tools.replay.standins import prepare_hosts

MIB = 1024


def problem_host() -> StandInHost:
    """web-01: 3 MiB of old rotated logs, a 13 MiB journal over its 4 MiB limit, 6 MiB of cached
    packages, a unit that failed once and one that is crash-looping."""
    archived = [SandboxFile(path=f"/var/log/journal/abc/system@0123-{i:016x}-00060a{i:010x}.journal",
                            size_kb=4 * MIB, age_days=4 - i) for i in range(3)]
    return StandInHost(
        files=[*(SandboxFile(path=f"/var/log/app/app.log.{i}.gz", size_kb=MIB, age_days=5) for i in range(1, 4)),
               SandboxFile(path="/var/log/app/app.log", size_kb=64),
               *archived, SandboxFile(path="/var/log/journal/abc/system.journal", size_kb=MIB),
               SandboxFile(path="/etc/systemd/journald.conf", content="[Journal]\nSystemMaxUse=4M\n"),
               *(SandboxFile(path=f"/var/cache/apt/archives/pkg{i}_1.0_amd64.deb", size_kb=2 * MIB) for i in range(3))],
        units={"nginx": {"ActiveState": "failed", "SubState": "failed", "Result": "exit-code", "NRestarts": 1},
               "payments-api": {"ActiveState": "failed", "SubState": "failed", "Result": "exit-code", "NRestarts": 9}})


@pytest.fixture
def host(tmp_path: Path) -> tuple[AnsibleClient, Path]:
    inventory = prepare_hosts({"web-01": problem_host()}, tmp_path / "standins")
    return AnsibleClient(str(inventory), 120, ReadLimits(reclaim_min_bytes=1024**2, crashloop_restarts=3)), \
        tmp_path / "standins" / "web-01"


def test_the_host_reads_each_item(host):
    client, _ = host
    obs = {o.query.split()[2]: o for o in client.read("web-01", disk=True, unit="nginx")}
    assert obs["rotated"].excerpt.startswith("rotated logs under /var/log on web-01: 3 files, 3.0 MiB")
    assert obs["rotated"].anomalous and obs["rotated"].about == {"host": "web-01", "path": "/var/log"}
    assert "journal on web-01: 13.0 MiB in 4 files (12.0 MiB archived), over its limit 4.0 MiB (SystemMaxUse=4M)" \
        == obs["journal"].excerpt and obs["journal"].anomalous
    assert obs["apt"].excerpt == "package cache on web-01: 3 .deb files, 6.0 MiB (/var/cache/apt/archives)"
    assert obs["unit"].excerpt == "unit nginx on web-01: failed (exit-code), not crash-looping: 1 restart(s)"
    looping = client.read("web-01", disk=False, unit="payments-api")
    assert [o.excerpt for o in looping] == ["unit payments-api on web-01: crash-looping: 9 restarts "
                                            "(HOST_CRASHLOOP_RESTARTS 3)"]


def test_an_item_that_cannot_be_read_is_one_item(host):
    client, _ = host
    obs = client.read("web-01", disk=True, unit="nosuch")
    unread = [o for o in obs if o.excerpt.startswith("could not read")]
    assert [o.excerpt.split(":")[0] for o in unread] == ["could not read the state of unit nosuch on web-01"]
    assert len(obs) == 3 + 1  # the three disk items are still there
    assert client.read("db-09", disk=True, unit="")[0].excerpt.startswith("could not read host db-09 through Ansible")


def _run(client: AnsibleClient, name: str, **params) -> ExecutionResult:
    action = CATALOG[name].action("web-01", **params)
    out = TOOLSET.execute(action, client, plan_id="plan-t")
    return ExecutionResult(action=name, target="web-01", status=out.status, output=out.output, details=out.details)


def test_journal_vacuum_drops_the_oldest_archived_files_until_it_fits(host):
    client, root = host
    ex = _run(client, "journald_vacuum", path="/var/log/journal", max_size_mb=4)
    assert ex.status == "ok", ex.output
    assert "aiops: journal 13.0 MiB -> 1.0 MiB (limit 4 MiB)" in ex.output
    left = sorted(p.name for p in (root / "var/log/journal/abc").iterdir())
    assert left == ["system.journal"]  # the active journal is never touched
    (check,) = asyncio.run(TOOLSET.verify(client, [], [ex], ""))
    assert check.recovered and "within its limit" in check.note


def test_apt_clean_runs_the_real_apt_get_on_the_stand_in(host):
    client, root = host
    ex = _run(client, "apt_clean")
    assert ex.status == "ok" and "removed 3 cached packages, 6.0 MiB" in ex.output, ex.output
    assert list((root / "var/cache/apt/archives").glob("*.deb")) == []
    (check,) = asyncio.run(TOOLSET.verify(client, [], [ex], ""))
    assert check.recovered and "0 .deb files" in check.note


def test_restarting_a_failed_unit_and_reading_it_back(host):
    client, _ = host
    ex = _run(client, "restart_failed_unit", service="nginx")
    assert ex.status == "ok" and ex.details["service"] == "nginx", ex.output
    (check,) = asyncio.run(TOOLSET.verify(client, [], [ex], ""))
    assert check.recovered and check.note == "unit nginx on web-01: active (running), 0 restart(s)"


def test_cleanup_of_rotated_logs_is_read_back(host):
    client, root = host
    ex = _run(client, "cleanup_rotated_logs", path="/var/log", older_than_days=1)
    assert ex.status == "ok" and "removed 3 files, 3.0 MiB" in ex.output, ex.output
    assert sorted(p.name for p in (root / "var/log/app").iterdir()) == ["app.log"]
    (check,) = asyncio.run(TOOLSET.verify(client, [], [ex], ""))
    assert check.recovered


def test_certbot_certificates_are_read_and_a_due_one_renewed(tmp_path: Path):
    """The real certbot, its lineage on the stand-in issued by a local ACME CA (pebble) and aged to 5 days."""
    import shutil

    if not (shutil.which("certbot") and shutil.which("pebble")):
        pytest.skip("certbot and pebble are not installed (scripts/setup.sh installs them)")
    from tests.sim.acme import pebble

    with pebble() as acme:
        inventory = prepare_hosts({"web-01": StandInHost(vars={"aiops_acme_ca_bundle": acme.ca_file})},
                                  tmp_path / "standins")
        root = tmp_path / "standins" / "web-01"
        acme.issue(root, "shop.example.test")
        acme.age(root, "shop.example.test", 5)
        client = AnsibleClient(str(inventory), 120)
        (cert,) = client.read("web-01", disk=False, unit="", certs=True)
        assert cert.anomalous and cert.about == {"host": "web-01", "certificate": "shop.example.test"}
        assert "(domains shop.example.test)" in cert.excerpt and "due for renewal (within 30 days)" in cert.excerpt
        ex = _run(client, "certbot_renew", cert_name="shop.example.test")
        assert ex.status == "ok" and "renewed certificate shop.example.test" in ex.output, ex.output
        (check,) = asyncio.run(TOOLSET.verify(client, [], [ex], ""))
        assert check.recovered and "not due" in check.note


REMOVE = """---
- name: Remove listed files
  hosts: "{{ target }}"
  gather_facts: false
  tasks:
    - name: Remove them
      aiops_remove_files:
        paths: "{{ paths }}"
        under: "{{ under }}"
"""


def test_files_are_deleted_in_one_call_only_while_each_is_a_regular_file_under_the_directory(tmp_path: Path,
                                                                                            monkeypatch):
    """`aiops_remove_files` (the cleanups' delete step) through the real ansible-playbook: a symlink or a
    directory found where a listed file was, or a path outside the directory, refuses the whole call
    before anything is deleted; a file already gone is nothing to do; --check deletes nothing."""
    import tools.ansible.runner as runner
    from tests.security.local_hosts import write_inventory
    from tools.ansible import AnsibleTool

    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "remove.yml").write_text(REMOVE)
    (books / "library").symlink_to(runner.PLAYBOOK_DIR / "library")
    monkeypatch.setattr(runner, "PLAYBOOK_DIR", books)
    logs, outside = tmp_path / "box" / "logs", tmp_path / "outside"
    logs.mkdir(parents=True)
    outside.mkdir()
    for name in ("a.1.gz", "b.2.gz"):
        (logs / name).write_text("old\n")
    (outside / "precious").write_text("keep\n")
    (logs / "link.3.gz").symlink_to(outside / "precious")
    (logs / "dir.4.gz").mkdir()
    (logs / "dir.4.gz" / "inside").write_text("keep\n")
    tool = AnsibleTool(str(write_inventory(tmp_path / "inventory.ini", {"box": tmp_path / "box"})))

    def remove(*names: str, check: bool = False, under: Path = logs):
        return tool.run("remove.yml", "box", {"paths": [str(logs / n) for n in names], "under": str(under)},
                        check=check)

    for bad, why in (("link.3.gz", "no longer a regular file"), ("dir.4.gz", "no longer a regular file")):
        run = remove("a.1.gz", bad)
        assert run.status == "failed" and why in run.summary, run.summary
    run = remove("a.1.gz", under=logs / "dir.4.gz")
    assert run.status == "failed" and "is not under" in run.summary, run.summary
    assert sorted(p.name for p in logs.iterdir()) == ["a.1.gz", "b.2.gz", "dir.4.gz", "link.3.gz"]
    assert (outside / "precious").read_text() == "keep\n" and (logs / "dir.4.gz" / "inside").exists()
    run = remove("a.1.gz", "b.2.gz", check=True)
    assert run.status == "successful" and "changed=1" in run.summary and "--- before" in run.diff, run.summary
    assert sorted(p.name for p in logs.iterdir()) == ["a.1.gz", "b.2.gz", "dir.4.gz", "link.3.gz"]
    run = remove("a.1.gz", "b.2.gz", "gone.5.gz")
    assert run.status == "successful" and "changed=1" in run.summary, run.summary
    assert sorted(p.name for p in logs.iterdir()) == ["dir.4.gz", "link.3.gz"]
    run = remove("a.1.gz")  # already gone: nothing to do
    assert run.status == "successful" and "changed=0" in run.summary, run.summary
