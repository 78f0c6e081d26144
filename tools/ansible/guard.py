"""Runs ansible-playbook so that it dies with the aiops process that started it.

ansible-runner starts `ansible-playbook` from PATH in its own session (pexpect). aiops puts a
small launcher named `ansible-playbook` first on that PATH, which runs this file: it leads its own
process group, asks the kernel to signal it when its parent (the aiops process) dies
(`PR_SET_PDEATHSIG`), starts the real ansible-playbook inside that group, and on that signal (or
SIGTERM/SIGINT/SIGHUP) kills the whole group - itself, ansible-playbook, its forked workers and the
module processes they run - so a `kill -9` of aiops never leaves a playbook changing a host with
nobody to report it. ansible-runner's own timeout kills the same group.

Standard library only: it runs before (and outside) the aiops package.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
REAL_BINARY_ENV = "AIOPS_REAL_ANSIBLE_PLAYBOOK"


def _die_with_parent(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux: the parent-watch loop below still applies
        return False


def main() -> int:
    real = os.environ.get(REAL_BINARY_ENV)
    if not real:
        print("aiops guard: AIOPS_REAL_ANSIBLE_PLAYBOOK is not set", file=sys.stderr)
        return 127
    parent = os.getppid()
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # lead a group of our own, so killing it can never reach the aiops process

    def kill_all(signum: int, _frame: object = None) -> None:
        why = "aiops died" if signum == signal.SIGUSR1 else f"got {signal.Signals(signum).name}"
        os.write(2, f"aiops guard: {why}: killing ansible-playbook and its workers\n".encode())
        os.killpg(os.getpgrp(), signal.SIGKILL)  # ansible-playbook, its workers, their modules, and us
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, kill_all)
    has_pdeathsig = _die_with_parent(signal.SIGUSR1)
    if os.getppid() != parent:  # the parent died before the kernel watch was armed
        return 128 + signal.SIGUSR1
    child = subprocess.Popen([real, *sys.argv[1:]])
    while True:
        try:
            return child.wait(timeout=None if has_pdeathsig else 1.0)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                kill_all(signal.SIGUSR1)


if __name__ == "__main__":
    sys.exit(main())
