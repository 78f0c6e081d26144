"""Typed, constrained parameters for catalog actions, and the one validator every value passes.

Every catalog parameter declares a type and a constraint: an enum, a full-match pattern, a numeric
range, or "an absolute path under these roots after normalisation". `CatalogEntry.action()` runs
every value (and the target) through `Param.check` / `check_target`, whoever proposed it - rules,
a model, a remembered fix or a toolset - so nothing from an alert, a log or a model reaches a
playbook, an API call or a path unvalidated. A refusal is a `ParameterRefused` naming the entry,
the parameter and the reason; planning turns it into an escalation that shows the reason.

Before a value's own constraint is even looked at, text that could steer a template engine, a shell
or a path is refused outright, with a specific reason: template markers (`{{`, `{%`, `{#`), NUL and
other control characters (newlines included), `..` path segments, and shell metacharacters.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

ParamValue = str | int | float | bool

# Characters a shell (or a router's script language, or Jinja) gives meaning to. A parameter may allow a
# few back explicitly (`allow`), e.g. globs allow `* ? [ ]` and a router's item ids start with `*`.
SHELL_META = frozenset(";&|$`<>\\'\"(){}[]!*?~#%^= ,\t")
_TEMPLATE_MARKERS = ("{{", "}}", "{%", "%}", "{#", "#}")
_ANSIBLE_PATTERNS = frozenset({"all", "ungrouped"})
HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})$")
SERVICE_NAME = r"[A-Za-z0-9][A-Za-z0-9@._-]{0,127}"  # a systemd unit / service name
PATH_CHARS = re.compile(r"^/[A-Za-z0-9._@+/-]*$")
GLOB = re.compile(r"^[A-Za-z0-9._*?\[\]-]{1,64}$")


class ParameterRefused(ValueError):
    """A value (or the target) of a catalog action failed its declared constraint; nothing was planned."""

    def __init__(self, entry: str, parameter: str, value: object, reason: str, *, whole: bool = False,
                 hostile: bool = False) -> None:
        self.entry, self.parameter, self.reason = entry, parameter, reason
        self.value = str(value)[:80]
        # The value carries text that would steer a template, a shell or a path (not merely out of range):
        # whoever sent it, the incident is not one to automate.
        self.hostile = hostile
        super().__init__(f"{entry}: {reason}" if whole else f"{entry}: {parameter} {self.value!r} refused: {reason}")


def text_problem(value: str, allow: str = "") -> str | None:
    """Why `value` must never reach a template, a shell or a path - or None."""
    for marker in _TEMPLATE_MARKERS:
        if marker in value:
            return f"contains the template marker {marker!r}"
    for ch in value:
        if ch == "\0":
            return "contains a NUL byte"
        if ch in "\n\r":
            return "contains a newline"
        if ord(ch) < 32 or ord(ch) == 127 or 0x80 <= ord(ch) < 0xA0:
            return f"contains the control character {ch!r}"
        if ch in SHELL_META and ch not in allow:
            return f"contains the shell metacharacter {ch!r}"
    if ".." in value.split("/") or value.startswith("../") or "/../" in value or value.endswith("/.."):
        return "contains a '..' path segment"
    return None


def check_target(entry: str, target: object) -> str:
    """A plan's target is a host (or device) name or an IP address, nothing else."""
    text = str(target)
    problem = text_problem(text) if isinstance(target, str) else "is not a string"
    hostile = problem is not None
    if problem is None and len(text) > 253:
        problem = "is longer than 253 characters"
    if problem is None and not HOST_NAME.fullmatch(text):
        try:
            ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            problem = "is not a host name (letters, digits, '.', '_', '-') or an IP address"
    if problem is None and ".." in text:
        problem = "contains '..'"
    if problem is None and text.lower() in _ANSIBLE_PATTERNS:
        problem = f"{text!r} is an Ansible host pattern that means every host, not one host"
    if problem:
        raise ParameterRefused(entry, "target", target, problem, hostile=hostile)
    return text


class Param(BaseModel):
    """One declared parameter: what it means (for the model and the approver) and what it may hold."""

    model_config = ConfigDict(frozen=True)

    description: str
    type: Literal["str", "int", "path", "globs", "playbook"] = "str"
    pattern: str | None = None  # str: the whole value must match
    enum: tuple[str, ...] | None = None  # str: one of these
    minimum: int | None = None  # int
    maximum: int | None = None
    roots: tuple[str, ...] = ()  # path: at or under one of these after normalisation
    allow: str = ""  # shell metacharacters this parameter may contain (globs: "*?[],")
    max_length: int = 128
    max_items: int = 10  # globs
    # A playbook's own vetting (its toolset's): (text, target or None) -> the text, or ValueError.
    vet: Callable[[str, str | None], str] | None = None
    # What kind of object the value names ("service", "vmid", "node", "interface", "path", ...): it must
    # be named by the alert or observed in this incident (tools/objects.py). None: a setting, not an object.
    names: str | None = None

    def constraint(self) -> str:
        """The constraint in words (shown to the model and in the catalog brief)."""
        if self.enum:
            return "one of " + ", ".join(self.enum)
        if self.type == "int":
            return f"integer {self.minimum}..{self.maximum}"
        if self.type == "path":
            return "absolute path under " + ", ".join(self.roots)
        if self.type == "playbook":
            return ("YAML playbook text: plays with hosts = the target only, allow-listed ansible.builtin modules, "
                    "no Jinja, no become, no roles/imports/when")
        if self.type == "globs":
            return f"comma-separated file-name globs (no '/'), at most {self.max_items}"
        return f"matching {self.pattern}" if self.pattern else "plain text"

    def check(self, entry: str, name: str, value: object, target: str | None = None) -> ParamValue:
        """The value, normalised, or ParameterRefused (a playbook is also checked against `target`)."""
        def refuse(reason: str) -> ParameterRefused:
            return ParameterRefused(entry, name, value, reason)

        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise refuse("is not an integer")
            text = str(value).strip()
            if not re.fullmatch(r"-?\d{1,12}", text):
                raise refuse("is not an integer")
            number = int(text)
            if (self.minimum is not None and number < self.minimum) or (
                    self.maximum is not None and number > self.maximum):
                raise refuse(f"is outside {self.minimum}..{self.maximum}")
            return number
        if not isinstance(value, str):
            raise refuse(f"is a {type(value).__name__}, not text")
        if self.type == "playbook":  # multi-line text with its own vetting (its toolset's `vet`)
            if self.vet is None:
                raise refuse("has no vetting: a playbook parameter must declare one")
            try:
                return self.vet(value, target)
            except ValueError as exc:
                raise ParameterRefused(entry, name, "", str(exc), whole=True) from None
        if not value:
            raise refuse("is empty")
        if len(value) > self.max_length:
            raise refuse(f"is longer than {self.max_length} characters")
        problem = text_problem(value, self.allow)
        if problem:
            raise ParameterRefused(entry, name, value, problem, hostile=True)
        if self.type == "path":
            return self._check_path(value, refuse)
        if self.type == "globs":
            globs = value.split(",")
            if len(globs) > self.max_items:
                raise refuse(f"has more than {self.max_items} globs")
            for g in globs:
                if not GLOB.fullmatch(g):
                    raise refuse(f"glob {g[:40]!r} is not a file-name glob (letters, digits, . _ - * ? [ ])")
                if not re.search(r"[A-Za-z0-9]", g):
                    raise refuse(f"glob {g!r} matches every file")
            return value
        if self.enum is not None and value not in self.enum:
            raise refuse("is not one of " + ", ".join(self.enum))
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise refuse(f"does not match {self.pattern}")
        return value

    def _check_path(self, value: str, refuse: Callable[[str], ParameterRefused]) -> str:
        if not value.startswith("/"):
            raise refuse("is not an absolute path")
        if not PATH_CHARS.fullmatch(value):
            raise refuse("has characters other than letters, digits and . _ @ + - /")
        norm = posixpath.normpath(value)
        if norm.startswith("//"):
            norm = "/" + norm.lstrip("/")
        if self.roots and not any(norm == r or norm.startswith(r.rstrip("/") + "/") for r in self.roots):
            raise refuse(f"is not under {', '.join(self.roots)}")
        return norm


def service_param(description: str = "service (systemd unit) name") -> Param:
    return Param(description=description, pattern=SERVICE_NAME, names="service")
