"""Finding 4 (the part on child processes): an orphaned ansible-playbook kept running after its parent
died. Now ansible-playbook runs under a guard that kills its whole process group (the playbook, its
forked workers, the module processes they run) when the aiops process that started it dies.

The test starts a real process that runs a slow playbook through AnsibleTool against a local stand-in
host, waits until the module process is running, kills the parent with SIGKILL (no handler can run),
and checks that no process of that run survives. Every process of the run carries a marker in its
environment, so the check (and the clean-up, should the test fail) only ever touches our processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import REPO
from tests.security.local_hosts import write_inventory
from tests.servers import free_port

SLOW = """---
- name: A playbook that takes its time
  hosts: "{{ target }}"
  gather_facts: false
  tasks:
    - name: Wait on a port nobody opens
      ansible.builtin.wait_for:
        host: 127.0.0.1
        port: %d
        timeout: 120
"""

CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
import tools.ansible as pkg
runner = getattr(pkg, "runner", pkg)
runner.PLAYBOOK_DIR = pkg.PLAYBOOK_DIR = Path(sys.argv[1])
print(pkg.AnsibleTool(sys.argv[2]).run("slow.yml", "box", {}).status, flush=True)
"""


def _marked(marker: str) -> list[int]:
    """Pids of live processes whose environment carries `marker` (zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"AIOPS_TEST_MARKER={marker}".encode() not in (entry / "environ").read_bytes():
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found.append(int(entry.name))
        except OSError:
            continue
    return found


def _cmdlines(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return out


def test_ansible_playbook_dies_with_its_parent(tmp_path):
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "slow.yml").write_text(SLOW % free_port())
    root = tmp_path / "box"
    root.mkdir()
    inventory = write_inventory(tmp_path / "inventory.ini", {"box": root})
    marker = uuid.uuid4().hex
    env = {**os.environ, "AIOPS_TEST_MARKER": marker}
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(books), str(inventory), str(REPO)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until the wait_for module itself is running
            if any("wait_for" in c for c in _cmdlines(_marked(marker))):
                break
            assert parent.poll() is None, parent.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError(f"the slow playbook never started: {_cmdlines(_marked(marker))}")
        children = [c for c in _cmdlines(_marked(marker)) if "ansible-playbook" in c]
        assert children, "no ansible-playbook process to orphan"
        parent.kill()  # SIGKILL: nothing in the parent gets to clean up
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = _cmdlines(_marked(marker))
        assert survivors == [], f"processes of the run outlived their parent: {survivors}"
    finally:
        for pid in _marked(marker):  # only processes this test started (they carry its marker)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if parent.poll() is None:
            parent.kill()


def test_a_run_that_outlives_its_timeout_is_stopped_with_everything_it_started(tmp_path, monkeypatch):
    import tools.ansible.runner as runner
    from tools.ansible import AnsibleTool

    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "slow.yml").write_text(SLOW % free_port())
    root = tmp_path / "box"
    root.mkdir()
    inventory = write_inventory(tmp_path / "inventory.ini", {"box": root})
    marker = uuid.uuid4().hex
    monkeypatch.setenv("AIOPS_TEST_MARKER", marker)  # inherited by every process of the run
    monkeypatch.setattr(runner, "PLAYBOOK_DIR", books)
    started = time.monotonic()
    try:
        run = AnsibleTool(str(inventory), timeout=8).run("slow.yml", "box", {})
        assert run.status != "successful" and time.monotonic() - started < 60
        assert "timed out after 8 s" in run.summary or run.rc == 124, run.summary
        deadline = time.monotonic() + 10
        while _marked(marker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _cmdlines(_marked(marker)) == []
    finally:
        for pid in _marked(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
