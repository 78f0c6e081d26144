"""Runs ansible-playbook so that it, and everything it starts, dies with the aiops process.

ansible-runner starts `ansible-playbook` from PATH (in subprocess mode). aiops puts a small
launcher named `ansible-playbook` first on that PATH, which runs this file. The guard:
- asks the kernel to signal it when its parent, the aiops process, dies (`PR_SET_PDEATHSIG`; a
  `kill -9` of aiops runs no handler, so nothing inside aiops could clean up);
- makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`): ansible's workers call setsid(), so
  killing a process group does not reach them, but as subreaper every orphaned descendant is
  re-parented to the guard, which can therefore always find and kill all of them;
- on that signal, on SIGTERM/SIGINT/SIGHUP, or when `AIOPS_ANSIBLE_TIMEOUT` seconds have passed, asks
  ansible-playbook to stop (SIGTERM: it stops its workers), then SIGKILLs every descendant left.

Standard library only: it runs before (and outside) the aiops package.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
REAL_BINARY_ENV = "AIOPS_REAL_ANSIBLE_PLAYBOOK"
TIMEOUT_ENV = "AIOPS_ANSIBLE_TIMEOUT"


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except (OSError, AttributeError):  # not Linux: the parent-watch loop in main() still applies
        return False


def descendants(root: int) -> list[int]:
    """Live (non-zombie) processes below `root`, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found


def _say(line: str) -> None:
    try:  # the terminal may be gone (the parent died): that must not stop the clean-up
        os.write(2, (line + "\n").encode())
    except OSError:
        pass


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_everything(child: subprocess.Popen[bytes] | None, grace: float = 3.0) -> None:
    """SIGTERM ansible-playbook (it stops its workers), then SIGKILL whatever is left below us."""
    if child is not None and child.poll() is None:
        try:
            child.terminate()
            child.wait(timeout=grace)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = descendants(os.getpid())
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        _reap()


def main() -> int:
    real = os.environ.get(REAL_BINARY_ENV)
    if not real:
        print("aiops guard: AIOPS_REAL_ANSIBLE_PLAYBOOK is not set", file=sys.stderr)
        return 127
    timeout = float(os.environ.get(TIMEOUT_ENV) or 0) or None
    parent = os.getppid()
    holder: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, _frame: object = None) -> None:
        for other in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(other, signal.SIG_IGN)  # one clean-up, not one per signal (SIGHUP + PDEATHSIG)
        why = "aiops died" if signum == signal.SIGUSR1 else f"got {signal.Signals(signum).name}"
        _say(f"aiops guard: {why}: stopping ansible-playbook and everything it started")
        try:
            stop_everything(holder[0] if holder else None)
        finally:
            os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, on_signal)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    has_pdeathsig = _prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != parent:  # the parent died before the kernel watch was armed
        return 128 + signal.SIGUSR1
    child = subprocess.Popen([real, *sys.argv[1:]])
    holder.append(child)
    started = time.monotonic()
    while True:
        try:
            rc = child.wait(timeout=1.0)
            stop_everything(None, grace=0)  # workers or modules that outlived ansible-playbook
            return rc
        except subprocess.TimeoutExpired:
            if not has_pdeathsig and os.getppid() != parent:
                on_signal(signal.SIGUSR1)
            if timeout is not None and time.monotonic() - started > timeout:
                _say(f"aiops guard: timed out after {timeout:g} s: stopping ansible-playbook")
                stop_everything(child)
                return 124


if __name__ == "__main__":
    sys.exit(main())
