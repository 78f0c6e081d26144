"""The host toolset's catalog entries: what each does, where it fits, and its auto-approval bounds.

Every entry runs one of the playbooks in `playbooks/` (or, for `run_generated_playbook`, a playbook a
model wrote, vetted by `generated.py`). The fit declarations say where each belongs and which
readings, about the same host / mount / service, must be present before it may run without a human.
"""

from __future__ import annotations

from core.models import ActionKind, Risk
from tools.ansible.generated import MAX_PLAYBOOK_BYTES, static_check
from tools.catalog_entry import AutoBounds, CatalogEntry, ParamBound
from tools.fit import (
    ALL_CATEGORIES,
    FAILING_DISK,
    HARDWARE,
    HOST_SOFTWARE,
    IN_A_POD,
    ORCHESTRATED,
    STORAGE_CLUSTER,
    WINDOWS,
    EvidenceNeed,
    Fit,
    Never,
)
from tools.params import Param, service_param

# Where each path parameter may point (after normalisation). Anything else is refused at planning.
CLEANUP_ROOTS = ("/var/log", "/var/tmp", "/tmp", "/srv", "/opt", "/data", "/mnt")
CONFIG_ROOTS = ("/etc", "/opt", "/srv", "/usr/local/etc")
JOURNAL_ROOTS = ("/var/log/journal", "/run/log/journal")
APT_ROOTS = ("/var/cache/apt",)
# The only globs an automatic cleanup may delete: rotated and compressed logs, never "*" or "*.log".
ROTATED_LOG_GLOBS = frozenset({"*.gz", "*.[0-9]", "*.old", "*.bz2", "*.xz", "*.zst", "*.[0-9].gz",
                               "*.log.[0-9]", "*.log.[0-9].gz", "*.log-[0-9]*"})
MIN_CLEANUP_AGE_DAYS = 1

_DISK_ALERT = (r"filesystem|disk space|out of disk|disk (usage|full|almost)|node_filesystem_(avail|free|size)"
               r"|filesystem_used|mountpoint=")
_FS_USAGE = EvidenceNeed(name="filesystem usage", signals=["metric", "state"], about=["host", "path"],
                         description="a filesystem-usage reading of that host's mount that rose (metrics, or the "
                                     "host's own df)",
                         pattern=r"filesystem|disk_used|disk_usage|fs_used|used_percent|df ")
_DISK_NEVER = [HARDWARE, STORAGE_CLUSTER, FAILING_DISK, ORCHESTRATED, WINDOWS,
               Never(name="inode exhaustion", pattern=r"inode|files_free"),
               Never(name="database-managed storage", domains=["database"])]
_HOST_NEVER = [HARDWARE, STORAGE_CLUSTER, ORCHESTRATED, WINDOWS, IN_A_POD]


def _generated_playbook_param() -> Param:
    return Param(description="the generated playbook (YAML text)", type="playbook", max_length=MAX_PLAYBOOK_BYTES,
                 vet=lambda text, target: static_check(text, target))


def entries() -> list[CatalogEntry]:
    return [
        CatalogEntry(
            name="cleanup_rotated_logs", kind=ActionKind.CLEANUP_DISK, risk=Risk.LOW,
            description="Delete rotated/compressed logs older than N days to free disk space",
            verification="filesystem usage back under the alert threshold",
            parameters={"path": Param(description="directory to clean", type="path", roots=CLEANUP_ROOTS,
                                      names="path"),
                        "patterns": Param(description="comma-separated globs of rotated log file names", type="globs",
                                          allow="*?[],"),
                        "older_than_days": Param(description="minimum age in days", type="int", minimum=0,
                                                 maximum=3650)},
            defaults={"path": "/var/log", "patterns": "*.gz,*.[0-9],*.old", "older_than_days": 3},
            playbook="cleanup_rotated_logs.yml",
            bounds=AutoBounds(note="under AUTO_APPROVE_LOG_ROOTS, rotated-log globs only, files at least a day old",
                              params={"path": ParamBound(under_setting="AUTO_APPROVE_LOG_ROOTS"),
                                      "patterns": ParamBound(subset_of=ROTATED_LOG_GLOBS, what="rotated-log globs"),
                                      "older_than_days": ParamBound(minimum=MIN_CLEANUP_AGE_DAYS, unit="day")}),
            fit=Fit(categories=["disk"], domains=["host", "virtualization", "other"], alert_kind=_DISK_ALERT,
                    alert_kind_description="a host filesystem-usage alert",
                    needs_labels=[["instance", "host", "nodename"]],
                    requires=[
                        _FS_USAGE,
                        EvidenceNeed(name="log growth", signals=["log", "metric", "state"], about=["path"],
                                     description="evidence that the mount fills with logs (rotated log files in "
                                                 "the logs, or a disk-usage reading of the log directory)",
                                     pattern=r"/var/log/\S+|\.log\.\d+(\.gz)?\b|logrotate|log_dir(ectory)?_bytes"
                                             r"|du /var/log|rotated logs"),
                    ],
                    never=_DISK_NEVER, suggest_without_evidence=["disk"])),
        CatalogEntry(
            name="restart_service", kind=ActionKind.RESTART_SERVICE, risk=Risk.MEDIUM,
            description="Restart one service on a host (brief unavailability of that service)",
            verification="the service's error/saturation metrics return to baseline",
            parameters={"service": service_param()}, playbook="restart_service.yml",
            fit=Fit(categories=["service_down", "crashloop", "cpu", "memory", "latency", "errors", "anomaly"],
                    domains=HOST_SOFTWARE,
                    requires=[EvidenceNeed(name="service symptom", signals=["metric", "log", "state"],
                                           description="an observation of the service itself misbehaving (a "
                                                       "failed unit, an anomalous metric or error logs of that "
                                                       "service)",
                                           pattern=r".", about=["service"])],
                    never=_HOST_NEVER, always_human=True, suggest_without_evidence=["service_down"])),
        CatalogEntry(
            name="restart_failed_unit", kind=ActionKind.RESTART_SERVICE, risk=Risk.MEDIUM,
            description="Restart a systemd unit that failed once (not one that is crash-looping)",
            verification="the unit is active again",
            parameters={"service": service_param()}, playbook="restart_service.yml",
            bounds=AutoBounds(note="none beyond the fit: only a unit the host itself shows failed, with fewer than "
                                   "HOST_CRASHLOOP_RESTARTS restarts"),
            fit=Fit(categories=["service_down", "availability"], domains=HOST_SOFTWARE,
                    requires=[EvidenceNeed(name="unit failed", signals=["state"], about=["host", "service"],
                                           description="the host shows the unit failed, and not crash-looping "
                                                       "(systemctl show)",
                                           pattern=r"failed \(.*\), not crash-looping")],
                    forbid=[EvidenceNeed(name="a crash-looping unit (a restart would not hold)", signals=["state"],
                                         about=["host", "service"], description="crash-looping",
                                         pattern=r"crash-looping: \d+ restarts")],
                    never=_HOST_NEVER, suggest_without_evidence=[])),
        CatalogEntry(
            name="rollback_config", kind=ActionKind.ANSIBLE_PLAYBOOK, risk=Risk.MEDIUM,
            description="Restore a service's last known-good configuration file and restart it",
            verification="the service stays up (restart count stops increasing)",
            parameters={"service": service_param("service name"),
                        "config_path": Param(description="configuration file path", type="path", roots=CONFIG_ROOTS,
                                             names="path")},
            playbook="rollback_config.yml",
            fit=Fit(categories=["crashloop", "service_down", "config", "errors"], domains=HOST_SOFTWARE,
                    requires=[EvidenceNeed(name="configuration error", signals=["log"], about=["path"],
                                           description="log lines of the service failing on its configuration "
                                                       "file",
                                           pattern=r"config|yaml|json|parse|invalid|syntax")],
                    never=_HOST_NEVER, always_human=True)),
        CatalogEntry(
            name="journald_vacuum", kind=ActionKind.CLEANUP_DISK, risk=Risk.LOW,
            description="Shrink the systemd journal to its size limit (journalctl --vacuum-size: oldest archived "
                        "files only, never the active journal)",
            verification="the journal is within its limit and filesystem usage back under the alert threshold",
            parameters={"path": Param(description="journal directory", type="path", roots=JOURNAL_ROOTS,
                                      names="path"),
                        "max_size_mb": Param(description="size to shrink the journal to, in MiB", type="int",
                                             minimum=1, maximum=1024 * 1024)},
            playbook="journald_vacuum.yml",
            bounds=AutoBounds(note="the journal directory only, kept at 64 MiB or more",
                              params={"path": ParamBound(under=JOURNAL_ROOTS),
                                      "max_size_mb": ParamBound(minimum=64, unit="MiB")}),
            fit=Fit(categories=["disk"], domains=["host", "virtualization", "other"], alert_kind=_DISK_ALERT,
                    alert_kind_description="a host filesystem-usage alert",
                    requires=[_FS_USAGE,
                              EvidenceNeed(name="journal over its limit", signals=["state"], about=["host", "path"],
                                           description="the host's journal larger than its limit, with archived "
                                                       "files to drop", pattern=r"journal on \S+: .* over its limit")],
                    never=_DISK_NEVER, suggest_without_evidence=["disk"])),
        CatalogEntry(
            name="apt_clean", kind=ActionKind.CLEANUP_DISK, risk=Risk.LOW,
            description="Empty the package cache (apt-get clean: downloaded .deb files, never installed packages)",
            verification="the package cache is empty and filesystem usage back under the alert threshold",
            parameters={"path": Param(description="package cache directory", type="path", roots=APT_ROOTS,
                                      names="path")},
            defaults={"path": "/var/cache/apt"}, playbook="apt_clean.yml",
            bounds=AutoBounds(note="the package cache only", params={"path": ParamBound(under=APT_ROOTS)}),
            fit=Fit(categories=["disk"], domains=["host", "virtualization", "other"], alert_kind=_DISK_ALERT,
                    alert_kind_description="a host filesystem-usage alert",
                    requires=[_FS_USAGE,
                              EvidenceNeed(name="package cache large", signals=["state"], about=["host", "path"],
                                           description="the host's package cache holding enough to matter",
                                           pattern=r"package cache on \S+: \d+ \.deb files")],
                    never=_DISK_NEVER, suggest_without_evidence=["disk"])),
        CatalogEntry(
            name="certbot_renew", kind=ActionKind.ANSIBLE_PLAYBOOK, risk=Risk.LOW,
            description="Renew one certbot certificate that is due (certbot renew --cert-name, with the "
                        "authenticator and deploy hooks its renewal configuration names)",
            verification="the certificate's expiry is far away again",
            parameters={"cert_name": Param(description="certbot certificate (lineage) name",
                                           pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", names="certificate")},
            playbook="certbot_renew.yml",
            bounds=AutoBounds(note="none beyond the fit: only a certificate the host's certbot shows due"),
            fit=Fit(categories=["certificate"],
                    requires=[EvidenceNeed(name="certificate due", signals=["state"], about=["host", "certificate"],
                                           description="the host's certbot shows that certificate due for "
                                                       "renewal", pattern=r"due for renewal")],
                    never=[HARDWARE, ORCHESTRATED, WINDOWS])),
        CatalogEntry(
            name="run_generated_playbook", kind=ActionKind.ANSIBLE_PLAYBOOK, risk=Risk.HIGH,
            description="Run a playbook written for this incident (only when no catalog action fits): vetted "
                        "(allow-listed modules, no Jinja, no become, the target only, syntax, ansible-lint, "
                        "--check --diff) before a human sees it; never automatic",
            verification="the alert's signals return to baseline",
            parameters={"playbook": _generated_playbook_param()},
            # A model's own playbook: only ever a proposal for a human (high risk, no bounds, always_human),
            # for host software where the catalog's playbooks apply, never where they are ruled out.
            fit=Fit(categories=[c for c in ALL_CATEGORIES if c in ("disk", "service_down", "crashloop", "cpu",
                                                                   "memory", "latency", "errors", "config",
                                                                   "anomaly")],
                    domains=HOST_SOFTWARE,
                    requires=[EvidenceNeed(name="symptom on the target", signals=["metric", "log", "state"],
                                           description="an observation of the target host misbehaving",
                                           pattern=r".", about=["host"])],
                    never=_HOST_NEVER, always_human=True,
                    suggest_without_evidence=["disk", "service_down", "crashloop", "cpu", "memory", "latency",
                                              "errors", "config", "anomaly"],
                    vetted_params=["playbook"])),
    ]
