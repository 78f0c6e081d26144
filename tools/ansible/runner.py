"""Run catalog playbooks with ansible-runner, after lint, syntax-check and --check.

Three walls stand between an alert's text and a host, on top of the catalog's parameter validation:
- every extra var reaches Ansible marked `!unsafe` (a vars file passed with `-e @file`), so Ansible
  never templates it: `{{ lookup('pipe', ...) }}` in a value stays a literal string;
- only hosts the inventory names explicitly are touched (`tools/ansible/inventory.py`); any other
  target is refused here and reported as a dry run by the executor;
- ansible-playbook runs under `tools/ansible/guard.py`, so it and its workers die with this process.

Each target host has its own breaker, "ansible:<host>" (core.resilience): a host Ansible reports
UNREACHABLE (down, refusing SSH, a name that does not resolve) is charged to that host's breaker only,
so one dead host never holds up runs on the others. A task that fails on a host that answered is the
playbook's result, not the host's fault, and is not charged. A playbook is never retried
automatically (it changes things); while a host's breaker is open, runs against it are refused at once
with status "unreachable" ("target unreachable (breaker open)") and nothing is started.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.resilience import CircuitOpenError, breaker
from tools.ansible.generated import static_check
from tools.ansible.guard import REAL_BINARY_ENV, TIMEOUT_ENV
from tools.ansible.inventory import inventory_hosts
from tools.ansible.lint import lint_playbook

PLAYBOOK_DIR = Path(__file__).parent / "playbooks"
_GUARD = Path(__file__).parent / "guard.py"


def breaker_name(host: str) -> str:
    return f"ansible:{host}"


class HostNotInInventory(ValueError):
    """The target is not named by the inventory: nothing may run against it."""


class _HostUnreachable(Exception):
    """Ansible could not reach the host: charged to its breaker (carries the run for the caller)."""

    def __init__(self, host: str, run: PlaybookRun) -> None:
        super().__init__(run.summary[:300])
        self.run = run


class _Unsafe(str):
    """A string Ansible must never template (dumped with the `!unsafe` tag)."""


class _VarsDumper(yaml.SafeDumper):
    pass


_VarsDumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v), style="'"))


def unsafe_vars_yaml(values: dict[str, Any]) -> str:
    """YAML for `-e @file` in which every string (also inside lists) is tagged `!unsafe`."""
    def mark(v: Any) -> Any:
        if isinstance(v, str):
            return _Unsafe(v)
        if isinstance(v, list | tuple):
            return [mark(x) for x in v]
        if isinstance(v, dict):
            return {str(k): mark(x) for k, x in v.items()}
        return v

    return yaml.dump({str(k): mark(v) for k, v in values.items()}, Dumper=_VarsDumper, sort_keys=True)


@dataclass
class PlaybookRun:
    status: str  # "successful", "failed", "timeout", "syntax_ok", "unreachable" (host down or its breaker open)
    rc: int
    summary: str  # the lines worth showing: our debug messages, failures, recap
    run_id: str = ""
    diff: str = ""  # --diff output (a --check --diff run shows it to the approver)
    data: dict[str, Any] | None = None  # what a read playbook reported with set_stats (its artifact data)


_RECAP = re.compile(r"^\S+\s+:\s+ok=\d+.*$", re.M)
_MSG = re.compile(r'"msg":\s*"(aiops: [^"]*)"')
_FATAL = re.compile(r"^fatal: .*$", re.M)
_UNREACHABLE = re.compile(r"^(\S+)\s+:\s+ok=\d+.*\bunreachable=(\d+)", re.M)


def unreachable_hosts(stats: dict[str, Any] | None, stdout: str) -> set[str]:
    """Hosts Ansible could not reach: its stats' `dark` hosts, else the PLAY RECAP's unreachable=N."""
    if stats is not None:
        return {h for h, n in (stats.get("dark") or {}).items() if n}
    return {m.group(1) for m in _UNREACHABLE.finditer(stdout) if int(m.group(2))}


def _summarise(stdout: str) -> str:
    lines = [m.group(1) for m in _MSG.finditer(stdout)]
    lines += [m.group(0)[:300] for m in _FATAL.finditer(stdout)]
    lines += [" ".join(m.group(0).split()) for m in _RECAP.finditer(stdout)]
    if lines:
        return "; ".join(lines)
    tail = [ln.strip() for ln in stdout.strip().splitlines() if ln.strip()][-3:]
    return " | ".join(tail)[:500]


_DIFF_START = re.compile(r"^--- before")
_DIFF_END = re.compile(r"^(TASK|PLAY|RUNNING HANDLER|changed|ok|skipping|fatal|failed)\b|^\s*$")


def _diff(stdout: str, limit: int = 4000) -> str:
    """The unified-diff blocks ansible-playbook --diff printed, in order (capped)."""
    out: list[str] = []
    inside = False
    for line in stdout.splitlines():
        if _DIFF_START.match(line):
            inside = True
        elif inside and _DIFF_END.match(line):
            inside = False
        if inside:
            out.append(line)
    text = "\n".join(out)
    return text if len(text) <= limit else text[:limit] + "\n... (diff truncated)"


def roots_regex(roots: list[str]) -> str:
    """`^(/etc|/opt)(/|$)`: a path equal to or below one of `roots` (absolute, normalised)."""
    return "^(" + "|".join(re.escape(r.rstrip("/")) for r in roots) + ")(/|$)"


def new_run_id() -> str:
    """Unique per run: names what a run leaves behind (e.g. the `.failed` post-mortem copy)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _artifact_data(runner: Any) -> dict[str, Any] | None:
    """The data a playbook published with `set_stats` (the stats event's artifact data), if any."""
    try:
        for event in runner.events:
            if event.get("event") == "playbook_on_stats":
                data = (event.get("event_data") or {}).get("artifact_data")
                return dict(data) if isinstance(data, dict) else None
    except Exception:  # noqa: BLE001 - no event stream (killed early): nothing was published
        return None
    return None


def _launcher(bin_dir: Path) -> None:
    """`ansible-playbook` on PATH for ansible-runner: runs the real one under the guard."""
    bin_dir.mkdir()
    script = bin_dir / "ansible-playbook"
    script.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(_GUARD)!r}, run_name='__main__')\n")
    script.chmod(0o700)


class AnsibleTool:
    def __init__(self, inventory: str | None = None, timeout: int = 300) -> None:
        self.inventory = inventory
        self.timeout = timeout

    def reachable(self, host: str) -> bool:
        """Only a host the inventory names explicitly (never Ansible's implicit localhost)."""
        return host in inventory_hosts(self.inventory)

    def run(self, playbook: str, host: str, extravars: dict[str, Any], *, check: bool = False,
            syntax_only: bool = False, run_id: str | None = None,
            allowed_roots: list[str] | None = None, text: str | None = None) -> PlaybookRun:
        """Run catalog playbook `playbook`, or (with `text`) a generated playbook, vetted again here."""
        if text is not None:  # generated: steps 1-5 again (tools/ansible/generated.py), whoever calls
            static_check(text, host)
        else:
            lint_playbook(PLAYBOOK_DIR / playbook)
        if not syntax_only and not self.reachable(host):
            raise HostNotInInventory(f"host {host!r} is not named in the Ansible inventory "
                                     f"({self.inventory or 'none configured'}); {playbook} was not run")
        run_id = run_id or new_run_id()
        if syntax_only:  # touches no host: no breaker
            return self._run(playbook, host, extravars, check=check, syntax_only=True, run_id=run_id,
                             allowed_roots=allowed_roots, text=text)
        b = breaker(breaker_name(host))
        try:
            return b.call_sync(lambda: self._charged(host, self._run(
                playbook, host, extravars, check=check, syntax_only=False, run_id=run_id,
                allowed_roots=allowed_roots, text=text)), counts=lambda e: isinstance(e, _HostUnreachable))
        except _HostUnreachable as exc:
            return exc.run
        except CircuitOpenError:
            last = (b.last_error or "").split(": ", 1)[-1][:200]
            return PlaybookRun(status="unreachable", rc=-1, run_id=run_id,
                               summary=f"{host}: target unreachable (breaker open after {b.total_failures} "
                                       f"unreachable run(s); retried after CB_TIMEOUT); {playbook} was not run"
                                       + (f"; last: {last}" if last else ""))

    @staticmethod
    def _charged(host: str, run: PlaybookRun) -> PlaybookRun:
        if run.status == "unreachable":
            raise _HostUnreachable(host, run)
        return run

    def _run(self, playbook: str, host: str, extravars: dict[str, Any], *, check: bool, syntax_only: bool,
             run_id: str, allowed_roots: list[str] | None, text: str | None) -> PlaybookRun:
        import ansible_runner

        real = Path(sys.executable).parent / "ansible-playbook"
        with tempfile.TemporaryDirectory(prefix="aiops-ansible-") as tmp:
            _launcher(Path(tmp) / "bin")
            path = PLAYBOOK_DIR / playbook
            if text is not None:
                (Path(tmp) / "project").mkdir()
                path = Path(tmp) / "project" / "generated.yml"
                path.write_text(text)
            env = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                   "ANSIBLE_LOCALHOST_WARNING": "False", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
                   REAL_BINARY_ENV: str(real if real.exists() else "ansible-playbook"),
                   TIMEOUT_ENV: str(self.timeout),  # the guard stops the whole tree; ansible-runner's own
                   # timeout (a little later) would kill only one process group, not the setsid() workers
                   # ansible-runner finds ansible-playbook on PATH: our guarded launcher first, then our venv
                   "PATH": os.pathsep.join([str(Path(tmp) / "bin"), str(Path(sys.executable).parent),
                                            os.environ.get("PATH", "")])}
            if syntax_only or not self.inventory:
                inventory = str(Path(tmp) / "empty.ini")
                Path(inventory).write_text("")
            else:
                inventory = os.path.abspath(self.inventory)
            # Trusted values of ours (not marked unsafe: the playbooks need them as they are) ...
            trusted: dict[str, str] = {"aiops_run_id": run_id}
            if allowed_roots:  # the playbook checks its normalised path against these (see its header)
                trusted["aiops_allowed_re"] = roots_regex(allowed_roots)
            # ... and everything that came from a plan, which Ansible must never template.
            vars_file = Path(tmp) / "aiops-vars.yml"
            vars_file.write_text(unsafe_vars_yaml({"target": host, **extravars}))
            trusted_file = Path(tmp) / "aiops-trusted.yml"
            trusted_file.write_text(yaml.safe_dump(trusted))
            args = ["--syntax-check"] if syntax_only else (["--check", "--diff"] if check else [])
            args += ["-e", f"@{trusted_file}", "-e", f"@{vars_file}"]
            runner = ansible_runner.interface.init_runner(
                private_data_dir=tmp, playbook=str(path), inventory=inventory,
                limit=None if syntax_only else host, cmdline=shlex.join(args),
                envvars=env, quiet=True, timeout=self.timeout + 30,
                settings={"suppress_ansible_output": True},
            )
            # subprocess, not pexpect: pexpect forks and runs Python in the child before exec, which is not
            # safe in a process with other threads (gRPC/milvus, torch) and intermittently killed the child
            # before it printed a line. subprocess forks and execs in C. The guard bounds the run time.
            runner.runner_mode = "subprocess"
            runner.run()
            stdout = runner.stdout.read() if runner.stdout else ""
            stderr = runner.stderr.read() if getattr(runner, "stderr", None) else ""
            try:
                stats = runner.stats  # read from the artifacts, before the directory goes
            except Exception:  # no event stream (killed early): the recap in stdout is all there is
                stats = None
            data = _artifact_data(runner)
        status = runner.status or "failed"
        if not syntax_only and host in unreachable_hosts(stats, stdout):
            status = "unreachable"
        if status != "successful" and not stdout.strip():
            errors = [ln.strip() for ln in stderr.splitlines() if ln.strip().startswith(("ERROR", "[ERROR]"))]
            stdout = f"ansible-runner status {status}, rc {runner.rc}" + (f": {errors[0][:300]}" if errors else "")
        if syntax_only and runner.rc == 0:
            status = "syntax_ok"
        return PlaybookRun(status=status, rc=int(runner.rc or 0), summary=_summarise(stdout), run_id=run_id,
                           diff=_diff(stdout) if check else "", data=data)
