"""Vetting a generated playbook: the steps it must pass before any human is shown it.

A generated playbook (the `run_generated_playbook` catalog entry; a model wrote its text) is
untrusted text that would run on a host. It is offered to an approver only after every step below,
in this order; the first that fails names itself and the reason, and the plan escalates instead:

1. `yaml`: parsed with `yaml.safe_load` (no tags, no aliases), at most `MAX_PLAYBOOK_BYTES`;
2. `modules`: the module allow-list (`tools/ansible/lint.py`, without shell/command/raw/script unless
   the entry's parameter allows them), only plain play and task keywords (no roles, imports, includes,
   vars files, delegation, `when`/`until`: those are Jinja without braces), no controller file reads,
   no `ansible_*` variables (they redirect the connection or name an interpreter command);
3. `jinja`: no `{{`, `{%` or `{#` in any key or value (the text is untrusted: Ansible would template it);
4. `become`: privilege escalation only where the entry's parameter declares it;
5. `hosts`: every play targets exactly the action's target by name: never `all`, a group or a pattern;
6. `syntax-check`: `ansible-playbook --syntax-check` (through the guarded runner);
7. `ansible-lint`: run as a subprocess on a temp copy, with a timeout (an ansible-lint that cannot
   run at all is reported as such, and the playbook is not offered either);
8. `check`: a `--check --diff` run where the host is in the inventory; its diff goes into the plan's
   checks for the approver (elsewhere: syntax only, like the catalog playbooks).

Steps 1-5 are pure (`static_check`, run by the catalog's parameter validation wherever an action is
built or re-validated); 6-8 run programs and live in the executor (`tools/executor.py`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tools.ansible.lint import ALLOWED_MODULES, TASK_SECTIONS, PlaybookRejected, lint_plays
from tools.ansible.lint import TASK_KEYWORDS as CATALOG_TASK_KEYWORDS

MAX_PLAYBOOK_BYTES = 16_384
LINT_TIMEOUT_SECONDS = 60
COMMAND_MODULES = frozenset({"ansible.builtin.shell", "ansible.builtin.command", "ansible.builtin.raw",
                             "ansible.builtin.script"})
# `assert: that:` is a Jinja expression without braces, so it is not offered to generated text.
GENERATED_MODULES = ALLOWED_MODULES - {"ansible.builtin.assert"}
PLAY_KEYWORDS = frozenset({"name", "hosts", "gather_facts", "tasks", "pre_tasks", "post_tasks", "handlers",
                           "become", "vars", "tags", "any_errors_fatal", "max_fail_percentage"})
# No when/until/changed_when/failed_when/loop (implicit Jinja, or useless without it), no delegate_to.
TASK_KEYWORDS = frozenset({"name", "register", "become", "tags", "notify", "ignore_errors", "no_log", "vars"})
# Module options that read the controller or are templated without braces.
# (`copy: validate` runs a command on the target.)
_FORBIDDEN_OPTIONS = {"ansible.builtin.copy": {"src", "validate"}, "ansible.builtin.debug": {"var"}}
# Variables only plain names, never `ansible_*`: ansible_connection/ansible_host would redirect the run,
# ansible_python_interpreter is a command line, ansible_become would bypass the become step.
_VAR_NAME = re.compile(r"^(?!ansible_)[a-z_][a-z0-9_]{0,63}$")
_JINJA = ("{{", "{%", "{#")
_PATTERN_CHARS = re.compile(r"[*?:!&,\[\]~\s]")


class GeneratedPlaybookRefused(ValueError):
    """A generated playbook failed one vetting step: never offered, the plan escalates with this reason."""

    def __init__(self, step: str, reason: str) -> None:
        self.step, self.reason = step, reason
        super().__init__(f"generated playbook refused at {step}: {reason}")


class _NoAliasLoader(yaml.SafeLoader):
    """safe_load without anchors/aliases: a small text cannot expand into a huge structure."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in a generated playbook")
        return super().compose_node(parent, index)


def parse(text: str) -> list[dict[str, Any]]:
    """Step 1: the plays, or GeneratedPlaybookRefused('yaml', ...)."""
    if not isinstance(text, str):
        raise GeneratedPlaybookRefused("yaml", "the playbook is not text")
    if len(text.encode()) > MAX_PLAYBOOK_BYTES:
        raise GeneratedPlaybookRefused("yaml", f"the playbook is larger than {MAX_PLAYBOOK_BYTES} bytes")
    if "\0" in text:
        raise GeneratedPlaybookRefused("yaml", "the playbook contains a NUL byte")
    try:
        plays = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())[:200]
        raise GeneratedPlaybookRefused("yaml", f"not valid YAML: {first}") from None
    if not isinstance(plays, list) or not plays or not all(isinstance(p, dict) for p in plays):
        raise GeneratedPlaybookRefused("yaml", "not a non-empty list of plays")
    return plays


def _tasks(plays: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for p in plays for s in TASK_SECTIONS for t in (p.get(s) or []) if isinstance(t, dict)]


def check_modules(plays: list[dict[str, Any]], allow_commands: bool = False) -> list[str]:
    """Step 2: allow-listed modules, plain keywords, no controller reads."""
    for play in plays:
        extra = sorted(set(play) - PLAY_KEYWORDS)
        if extra:
            raise GeneratedPlaybookRefused("modules", f"play keyword {extra[0]!r} is not allowed in a generated "
                                                      "playbook (no roles, imports, includes, vars files or connection "
                                                      "settings)")
    for node in [*plays, *_tasks(plays)]:
        variables = node.get("vars")
        if variables is None:
            continue
        if not isinstance(variables, dict):
            continue  # not a mapping: ansible-playbook --syntax-check refuses it with its own words
        for var in variables:
            if not isinstance(var, str) or not _VAR_NAME.match(var):
                raise GeneratedPlaybookRefused("modules", f"variable {str(var)[:40]!r} is not allowed in a generated "
                                                          "playbook (plain lower-case names only, never ansible_*)")
    for task in _tasks(plays):
        implicit = sorted(k for k in task if k in CATALOG_TASK_KEYWORDS and k not in TASK_KEYWORDS)
        if implicit and implicit[0] != "become_user":
            raise GeneratedPlaybookRefused("modules", f"task keyword {implicit[0]!r} is not allowed in a generated "
                                                      "playbook (when/until/loop are Jinja without braces)")
    allowed = GENERATED_MODULES | (COMMAND_MODULES if allow_commands else frozenset())
    keywords = TASK_KEYWORDS | {"become_user"}  # become_user is refused by the become step, with its reason
    try:
        used = lint_plays(plays, "generated playbook", allowed, keywords)
    except PlaybookRejected as exc:
        raise GeneratedPlaybookRefused("modules", str(exc).removeprefix("generated playbook: ")) from None
    for task, module in zip(_tasks(plays), used, strict=True):
        args = task[module]
        if isinstance(args, str):  # free-form "k=v k=v": read the keys the same way
            keys = {part.split("=", 1)[0] for part in args.split() if "=" in part}
        elif isinstance(args, dict):
            keys = {str(k) for k in args}
        elif args is None:
            keys = set()
        else:
            raise GeneratedPlaybookRefused("modules", f"task {task.get('name')!r}: {module} options are not a mapping")
        bad = sorted(keys & _FORBIDDEN_OPTIONS.get(module, set()))
        if bad:
            raise GeneratedPlaybookRefused("modules", f"task {task.get('name')!r}: {module} option {bad[0]!r} is not "
                                                      "allowed in a generated playbook (it reads the controller or is "
                                                      "templated)")
    return used


def check_jinja(node: Any, where: str = "playbook") -> None:
    """Step 3: no template marker in any key or value, however deep."""
    if isinstance(node, str):
        for marker in _JINJA:
            if marker in node:
                raise GeneratedPlaybookRefused("jinja", f"{where} contains the template marker {marker!r}: generated "
                                                        "text is never templated")
    elif isinstance(node, dict):
        for k, v in node.items():
            check_jinja(k, where)
            check_jinja(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_jinja(v, f"{where}[{i}]")


def check_become(plays: list[dict[str, Any]], allowed: bool) -> None:
    """Step 4: become (and become_user) only where the catalog entry declares it."""
    if allowed:
        return
    for node in [*plays, *_tasks(plays)]:
        for key in ("become", "become_user"):
            if key in node and node[key] not in (False, None):
                raise GeneratedPlaybookRefused("become", f"{key!r} is set in {node.get('name') or 'a play'!r}, but "
                                                         "privilege escalation is not declared for generated playbooks")


def check_hosts(plays: list[dict[str, Any]], target: str) -> None:
    """Step 5: every play names exactly the action's target (no all, no patterns, no other host)."""
    for play in plays:
        hosts = play.get("hosts")
        given = hosts if isinstance(hosts, list) else [hosts]
        names = [h for h in given if isinstance(h, str) and h]
        if not names or len(names) != len(given):
            raise GeneratedPlaybookRefused("hosts", f"play {play.get('name')!r} does not name its hosts")
        for h in names:
            if h.strip().lower() in ("all", "ungrouped"):
                raise GeneratedPlaybookRefused("hosts", f"hosts {h!r} means every host; a generated playbook names "
                                                        f"only the incident's target ({target})")
            if _PATTERN_CHARS.search(h):
                raise GeneratedPlaybookRefused("hosts", f"hosts {h!r} is a host pattern; a generated playbook names "
                                                        f"only the incident's target ({target})")
            if h != target:
                raise GeneratedPlaybookRefused("hosts", f"host {h!r} is not the incident's target ({target})")


def static_check(text: str, target: str | None, *, become: bool = False, allow_commands: bool = False) -> str:
    """Steps 1-5 in order (hosts only when the target is known); the text unchanged, or the refusal."""
    plays = parse(text)
    check_modules(plays, allow_commands)
    check_jinja(plays)
    check_become(plays, become)
    if target is not None:
        check_hosts(plays, target)
    return text


def _ansible_lint() -> str:
    beside = Path(sys.executable).parent / "ansible-lint"
    return str(beside) if beside.exists() else "ansible-lint"


def ansible_lint(text: str, timeout: int = LINT_TIMEOUT_SECONDS) -> str:
    """Step 7: ansible-lint on a temp copy (offline). The summary line, or GeneratedPlaybookRefused."""
    with tempfile.TemporaryDirectory(prefix="aiops-lint-") as tmp:
        path = Path(tmp) / "generated.yml"
        path.write_text(text)
        env = {**os.environ, "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1", "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        try:
            out = subprocess.run([_ansible_lint(), "--offline", "--nocolor", "-q", "generated.yml"], cwd=tmp,
                                 capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except FileNotFoundError:
            raise GeneratedPlaybookRefused("ansible-lint", "could not run (infrastructure): ansible-lint is not "
                                                           "installed") from None
        except subprocess.TimeoutExpired:
            raise GeneratedPlaybookRefused("ansible-lint", f"could not run (infrastructure): timed out after "
                                                           f"{timeout} s") from None
    if out.returncode == 0:
        return "ansible-lint: passed"
    findings = [ln.strip() for ln in out.stdout.splitlines() if re.match(r"^[\w-]+(\[[\w-]+\])?: ", ln.strip())]
    if out.returncode == 2 and findings:
        return _raise_lint(findings)
    last = (out.stderr.strip().splitlines() or out.stdout.strip().splitlines() or ["no output"])[-1]
    raise GeneratedPlaybookRefused("ansible-lint", f"could not run (infrastructure): exit {out.returncode}: "
                                                   f"{last[:200]}")


def _raise_lint(findings: list[str]) -> str:
    more = f" (+{len(findings) - 3} more)" if len(findings) > 3 else ""
    raise GeneratedPlaybookRefused("ansible-lint", "; ".join(findings[:3]) + more)
