"""What a host itself says about its disk and one service unit, read through Ansible (host_read.yml).

One read-only playbook run per incident whose host is in the inventory; each item is read on its own,
and becomes one observation (or one "could not read X" observation when it failed):

- rotated logs under /var/log at least a day old (count, bytes): what `cleanup_rotated_logs` frees;
- the systemd journal (bytes, archived bytes) against its limit (`SystemMaxUse` in journald.conf, else
  journald's own cap of 4 GiB): what `journald_vacuum` frees;
- the package cache (`.deb` files under /var/cache/apt/archives): what `apt_clean` frees;
- the unit the alert names (`systemctl show`: ActiveState, Result, NRestarts): failed once, or
  crash-looping (HOST_CRASHLOOP_RESTARTS restarts or more);
- certbot's certificates (`certbot certificates`): each lineage's domains and expiry, due for
  renewal within HOST_CERT_RENEW_DAYS.

Every observation is about the host and the path (or service) it measured, so a fix on another host
or another directory can never cite it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

from tools.ansible.entries import ROTATED_LOG_GLOBS
from tools.result import UNREAD, Observation

TOOL = "host"
JOURNALD_CAP = 4 * 1024**3  # journald's SystemMaxUse default is at most 4 GiB
_SIZE = re.compile(r"^\s*SystemMaxUse\s*=\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.M | re.I)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class ReadLimits(BaseModel):
    reclaim_min_bytes: int = 100 * 1024**2  # a reading this large (or larger) is worth freeing
    crashloop_restarts: int = 3  # a unit restarted this often is crash-looping, not merely failed
    cert_renew_days: int = 30  # a certificate expiring within this many days is due for renewal


class Certificate(BaseModel):
    name: str
    domains: list[str]
    expiry: str
    days: int | None  # None: expired


def certificates(text: str) -> list[Certificate]:
    """The lineages `certbot certificates` lists (name, domains, expiry, days of validity left)."""
    out: list[Certificate] = []
    for block in re.split(r"\n\s*Certificate Name: ", "\n" + (text or ""))[1:]:
        name = block.split("\n", 1)[0].strip()
        domains = re.search(r"Domains: (.*)", block)
        expiry = re.search(r"Expiry Date: (\S+ \S+) \((?:VALID: (\d+) days?|INVALID: [^)]*)\)", block)
        if name and expiry:
            out.append(Certificate(name=name, domains=(domains.group(1).split() if domains else []),
                                   expiry=expiry.group(1), days=int(expiry.group(2)) if expiry.group(2) else None))
    return out


def _mib(n: float) -> str:
    return f"{n / 1024**2:.1f} MiB"


def journal_limit(conf_text: str) -> tuple[int, str]:
    """(bytes, where it comes from) of journald's size limit."""
    m = _SIZE.search(conf_text or "")
    if m:
        return int(m.group(1)) * _UNITS[m.group(2).upper()], f"SystemMaxUse={m.group(1)}{m.group(2).upper()}"
    return JOURNALD_CAP, "journald's default cap"


def unit_state(text: str) -> dict[str, str]:
    """`systemctl show` output (KEY=value lines), or a stand-in's JSON state, as a dict."""
    text = (text or "").strip()
    if text.startswith("{"):
        return {k: str(v) for k, v in json.loads(text).items()}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def observations(host: str, data: dict[str, Any] | None, unit: str, limits: ReadLimits,
                 failure: str = "") -> list[Observation]:
    """The host's readings as observations (one per item read, one per item that could not be)."""
    if data is None:
        return [Observation(tool=TOOL, query=f"host_read {host}", component=host, signal="state", about={"host": host},
                            excerpt=f"{UNREAD} host {host} through Ansible: {failure or 'no data'}"[:400])]
    out: list[Observation] = []

    def item(name: str, what: str, about: dict[str, str]) -> dict[str, Any] | None:
        d = data.get(name) or {}
        if d.get("skipped"):
            return None
        if d.get("failed"):
            out.append(Observation(tool=TOOL, query=f"host_read {host} {name}", component=host, signal="state",
                                   about=about, excerpt=f"{UNREAD} {what} on {host}: {d.get('msg') or 'failed'}"[:400]))
            return None
        return d

    if (d := item("rotated", "the rotated logs", {"host": host, "path": "/var/log"})) is not None:
        size = int(d.get("bytes") or 0)
        out.append(Observation(
            tool=TOOL, query=f"host_read {host} rotated /var/log", component=host, signal="state",
            value=float(size), anomalous=size >= limits.reclaim_min_bytes, about={"host": host, "path": "/var/log"},
            excerpt=f"rotated logs under /var/log on {host}: {d.get('files', 0)} files, {_mib(size)} at least a day "
                    f"old ({','.join(sorted(ROTATED_LOG_GLOBS))[:60]}...)"))
    conf = data.get("journald_conf") or {}
    if (d := item("journal", "the systemd journal", {"host": host, "path": "/var/log/journal"})) is not None:
        size, archived = int(d.get("bytes") or 0), int(d.get("archived_bytes") or 0)
        limit, source = journal_limit(str(conf.get("text") or ""))
        over = size > limit and archived > 0
        freeable = min(archived, max(0, size - limit))
        out.append(Observation(
            tool=TOOL, query=f"host_read {host} journal /var/log/journal", component=host, signal="state",
            value=float(freeable), anomalous=over and freeable >= limits.reclaim_min_bytes,
            about={"host": host, "path": "/var/log/journal"},
            excerpt=(f"journal on {host}: {_mib(size)} in {d.get('files', 0)} files ({_mib(archived)} archived), "
                     + (f"over its limit {_mib(limit)} ({source})" if over else f"within its limit {_mib(limit)} "
                        f"({source})"))))
    if (d := item("apt_cache", "the package cache", {"host": host, "path": "/var/cache/apt"})) is not None:
        size = int(d.get("bytes") or 0)
        out.append(Observation(
            tool=TOOL, query=f"host_read {host} apt /var/cache/apt", component=host, signal="state",
            value=float(size), anomalous=size >= limits.reclaim_min_bytes,
            about={"host": host, "path": "/var/cache/apt"},
            excerpt=f"package cache on {host}: {d.get('files', 0)} .deb files, {_mib(size)} (/var/cache/apt/archives)"))
    if (d := item("certs", "certbot's certificates", {"host": host})) is not None:
        found = certificates(str(d.get("text") or ""))
        if not found:
            out.append(Observation(tool=TOOL, query=f"host_read {host} cert", component=host, signal="state",
                                   about={"host": host}, excerpt=f"certbot on {host} manages no certificates"))
        for c in found:
            due = c.days is None or c.days <= limits.cert_renew_days
            left = "EXPIRED" if c.days is None else f"{c.days} days left"
            out.append(Observation(
                tool=TOOL, query=f"host_read {host} cert {c.name}", component=host, signal="state",
                value=float(c.days if c.days is not None else -1), anomalous=due,
                about={"host": host, "certificate": c.name},
                excerpt=(f"certificate {c.name} on {host} (domains {' '.join(c.domains)}): expires {c.expiry} "
                         f"({left}), " + (f"due for renewal (within {limits.cert_renew_days} days)" if due else
                                          f"not due (renewal within {limits.cert_renew_days} days)"))))
    if unit and (d := item("unit", f"the state of unit {unit}", {"host": host, "service": unit})) is not None:
        st = unit_state(str(d.get("text") or ""))
        state, restarts = st.get("ActiveState", "?"), int(st.get("NRestarts") or 0)
        about = {"host": host, "service": unit}
        if state == "failed" and restarts >= limits.crashloop_restarts:
            what = f"crash-looping: {restarts} restarts (HOST_CRASHLOOP_RESTARTS {limits.crashloop_restarts})"
        elif state == "failed":
            what = f"failed ({st.get('Result', '?')}), not crash-looping: {restarts} restart(s)"
        else:
            what = f"{state} ({st.get('SubState', '?')}), {restarts} restart(s)"
        out.append(Observation(
            tool=TOOL, query=f"host_read {host} unit {unit}", component=unit, signal="state",
            anomalous=state == "failed", value=float(restarts), about=about,
            excerpt=f"unit {unit} on {host}: {what}"))
    return out
