"""The awesome-prometheus-alerts catalogue, each rule rendered as Alertmanager would send it.

The catalogue (`awesome-prometheus-alerts/_data/rules.yml`, CC BY 4.0, read at run time from
`DATASETS_DIR`, never bundled) gives each rule a human name, a PromQL expression, a description
template and a severity. A real firing alert carries more: the alert name as Prometheus loads it
(the catalogue's generator camel-cases the name), the labels of the series that matched (the target's
`instance` and `job`, plus whatever the rule aggregates by or its templates read), the annotations with
`$labels`/`$value` filled in, and a `generatorURL` holding the expression. `render` builds exactly
that, deterministically (no clock, no randomness), so rule-mode triage can be measured on the alerts
people actually run.

Template filling is a small, closed substitution (`$labels.X`, `$value` and its usual pipes); no
template engine ever sees catalogue text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from pydantic import BaseModel

from core.models import Alert, AlertmanagerWebhook

CATALOGUE = Path("awesome-prometheus-alerts") / "_data" / "rules.yml"
STARTS_AT = "2026-03-10T03:45:00Z"
PROMETHEUS = "http://prometheus.example:9090"


class CatalogueRule(BaseModel):
    """One rule of the catalogue, where it sits (group / service / exporter) and what it says."""

    group: str
    service: str
    exporter: str
    name: str  # the catalogue's human name, e.g. "Host out of disk space"
    query: str
    description: str = ""
    severity: str = "warning"

    @property
    def alertname(self) -> str:
        return alertname(self.name)


def alertname(name: str) -> str:
    """The catalogue generator's alert name: words capitalised and joined ("Host out of memory" ->
    "HostOutOfMemory"; "AlertManager E2E" -> "AlertmanagerE2e")."""
    return "".join(w[:1].upper() + w[1:].lower() for w in re.split(r"[^A-Za-z0-9]+", name) if w)


def load_catalogue(data_dir: Path) -> list[CatalogueRule]:
    path = data_dir / CATALOGUE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (pass --data DIR, the shared datasets folder)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for g in raw["groups"]:
        for s in g["services"]:
            for e in s.get("exporters") or []:
                for r in e.get("rules") or []:
                    out.append(CatalogueRule(group=g["name"], service=s["name"], exporter=e.get("slug", ""),
                                             name=r["name"], query=str(r["query"]),
                                             description=str(r.get("description") or ""),
                                             severity=str(r.get("severity") or "warning")))
    return out


# ------------------------------------------------------------------------------- target labels --
# Where each kind of exporter listens and the job name people give it (the ports are the exporters'
# registered defaults; first matching key of the service/exporter name wins).
_TARGETS: list[tuple[str, str, str, str]] = [  # (substring of "service exporter", job, host, port)
    ("node-exporter zfs", "node", "nas-01", "9100"), ("zfs", "zfs", "nas-01", "9134"),
    ("host and hardware", "node", "web-01", "9100"), ("s.m.a.r.t", "smartctl", "web-01", "9633"),
    ("ipmi", "ipmi", "web-01", "9290"), ("docker", "cadvisor", "docker-01", "8080"),
    ("blackbox", "blackbox", "shop.example.com", "443"), ("windows", "windows", "win-01", "9182"),
    ("vmware", "vmware", "vcenter-01", "9272"), ("proxmox", "pve", "pve-01", "9221"),
    ("netdata", "netdata", "web-01", "19999"), ("ebpf", "ebpf", "web-01", "9435"),
    ("process", "process", "web-01", "9256"), ("systemd", "systemd", "web-01", "9558"),
    ("prometheus self", "prometheus", "prometheus-01", "9090"), ("mysql", "mysql", "db-01", "9104"),
    ("patroni", "patroni", "db-01", "8008"), ("pgbouncer", "pgbouncer", "db-01", "9127"),
    ("postgres", "postgres", "db-01", "9187"), ("sql server", "mssql", "mssql-01", "4000"),
    ("oracle", "oracledb", "ora-01", "9161"), ("redis", "redis", "cache-01", "9121"),
    ("memcached", "memcached", "cache-01", "9150"), ("mongodb", "mongodb", "mongo-01", "9216"),
    ("elasticsearch", "elasticsearch", "es-01", "9114"), ("opensearch", "opensearch", "os-01", "9200"),
    ("meilisearch", "meilisearch", "search-01", "7700"), ("cassandra", "cassandra", "cass-01", "8080"),
    ("clickhouse", "clickhouse", "ch-01", "9363"), ("couchdb", "couchdb", "couch-01", "9984"),
    ("solr", "solr", "solr-01", "9854"), ("rabbitmq", "rabbitmq", "mq-01", "15692"),
    ("zookeeper", "zookeeper", "zk-01", "9141"), ("kafka", "kafka", "kafka-01", "9308"),
    ("pulsar", "pulsar", "pulsar-01", "8080"), ("nats", "nats", "nats-01", "7777"),
    ("nginx", "nginx", "lb-01", "9113"), ("apache flink", "flink", "flink-01", "9249"),
    ("apache spark", "spark", "spark-01", "4040"), ("apache", "apache", "web-01", "9117"),
    ("haproxy", "haproxy", "lb-01", "8404"), ("traefik", "traefik", "lb-01", "8082"),
    ("caddy", "caddy", "lb-01", "2019"), ("envoy", "envoy", "edge-01", "9901"),
    ("linkerd", "linkerd", "mesh-01", "4191"), ("istio", "istio", "mesh-01", "15020"),
    ("php-fpm", "php-fpm", "app-01", "9253"), ("jvm", "jvm", "app-01", "9404"),
    ("golang", "golang", "app-01", "8080"), ("ruby", "ruby", "app-01", "9394"),
    ("python", "python", "app-01", "8000"), ("sidekiq", "sidekiq", "app-01", "9359"),
    ("hadoop", "hadoop", "hadoop-01", "7071"), ("kubernetes", "kube-state-metrics", "ksm", "8080"),
    ("nomad", "nomad", "nomad-01", "4646"), ("consul", "consul", "consul-01", "9107"),
    ("etcd", "etcd", "etcd-01", "2379"), ("openstack", "openstack", "openstack-01", "9180"),
    ("jenkins", "jenkins", "ci-01", "8080"), ("argocd", "argocd", "argocd-01", "8082"),
    ("fluxcd", "flux", "flux-01", "8080"), ("gitlab", "gitlab", "gitlab-01", "9168"),
    ("spinnaker", "spinnaker", "spin-01", "8008"), ("speedtest", "speedtest", "gw-01", "9112"),
    ("ssl/tls", "ssl", "ssl-exporter", "9219"), ("cert-manager", "cert-manager", "cert-manager", "9402"),
    ("juniper", "junos", "sw-core-01", "9326"), ("coredns", "coredns", "dns-01", "9153"),
    ("freeswitch", "freeswitch", "pbx-01", "9282"), ("vault", "vault", "vault-01", "8200"),
    ("keycloak", "keycloak", "sso-01", "8080"), ("cloudflare", "cloudflare", "cf-exporter", "8080"),
    ("snmp", "snmp", "sw-01", "9116"), ("cilium", "cilium", "worker-1", "9962"),
    ("wireguard", "wireguard", "vpn-01", "9586"), ("ceph", "ceph", "ceph-mgr-01", "9283"),
    ("openebs", "openebs", "worker-1", "9500"), ("minio", "minio", "minio-01", "9000"),
    ("cloudwatch", "cloudwatch", "cw-exporter", "9106"), ("stackdriver", "stackdriver", "sd-exporter", "9255"),
    ("digitalocean", "digitalocean", "do-exporter", "9212"), ("azure", "azure", "azure-exporter", "8080"),
    ("thanos", "thanos", "thanos-01", "10902"), ("promtail", "promtail", "web-01", "9080"),
    ("loki", "loki", "loki-01", "3100"), ("cortex", "cortex", "cortex-01", "9009"),
    ("tempo", "tempo", "tempo-01", "3200"), ("mimir", "mimir", "mimir-01", "8080"),
    ("alloy", "alloy", "web-01", "12345"), ("opentelemetry", "otelcol", "otel-01", "8888"),
    ("jaeger", "jaeger", "jaeger-01", "14269"), ("apc ups", "apcupsd", "ups-01", "9162"),
    ("graph node", "graph-node", "graph-01", "8040"), ("litellm", "litellm", "llm-gw-01", "4000"),
]

# Values for the labels a rule's expression or templates use. One realistic value each; a few are
# per exporter (a systemd `name` is a unit, a Docker `name` a container, a Proxmox `name` a guest).
_LABEL_VALUES: dict[str, str] = {
    "namespace": "shop", "pod": "checkout-7d9f8b6c5-x2x4k", "container": "checkout", "deployment": "checkout",
    "statefulset": "postgres", "daemonset": "node-agent", "job_name": "nightly-backup-29001", "cronjob":
    "nightly-backup", "node": "worker-1", "persistentvolumeclaim": "data-postgres-0",
    "horizontalpodautoscaler": "checkout", "condition": "Ready", "phase": "Pending", "reason": "OOMKilled",
    "device": "/dev/sda1", "mountpoint": "/", "fstype": "ext4", "cpu": "0", "mode": "user",
    "datname": "app", "database": "app", "datid": "16384", "relname": "orders", "indexrelname":
    "orders_pkey", "idxname": "orders_pkey", "tablespace": "USERS", "user": "app", "state": "active",
    "server": "web-02", "backend": "web", "proxy": "web", "frontend": "http-in", "route": "/api/orders",
    "handler": "/api/v1/query", "code": "500", "status": "500", "status_code": "500", "method": "GET",
    "cluster": "prod", "cassandra_cluster": "prod", "envoy_cluster_name": "checkout", "source_cluster":
    "frontend", "target_cluster": "checkout", "zone": "example.com", "region": "eu-west-1", "realm":
    "master", "topic": "orders", "consumergroup": "billing", "partition": "0", "queue": "orders",
    "queue_name": "orders", "vhost": "/", "subscription": "orders-sub", "group": "billing",
    "collection": "orders", "shard": "1", "replica": "2", "set": "rs0", "tenant": "team-a", "env": "prod",
    "base_url": "https://shop.example.com", "groupname": "nginx", "id": "qemu/101", "interface":
    "ge-0/0/1", "ifDescr": "GigabitEthernet0/1", "ifName": "Gi0/1", "ifAlias": "uplink-isp",
    "service": "checkout", "service_name": "checkout", "rule_group": "alerts.yml;node",
    "operation": "write", "pool": "rbd", "jenkins_job": "deploy-shop", "project_id": "shop-prod",
    "executor_id": "3", "exporter": "otlp", "receiver": "otlp", "processor": "batch", "collector":
    "textfile", "hostname": "web-01", "customresource_kind": "Application", "provider": "github",
    "repo": "shop", "type": "write", "kind": "Application", "to": "alertmanager", "resource": "cpu",
    "temperature_type": "current", "sensor": "cpu", "chip": "platform_coretemp_0", "sensor_name": "CPU Temp",
    "return_code": "1", "public_key": "k3yAbC=", "ip": "10.0.0.7", "dbinstance_identifier": "shop-db",
    "load_balancer": "app/shop-alb", "sans": "shop.example.com", "class": "default", "map_name":
    "cilium_lb4_services", "kv_name": "secret", "task_name": "db-migrate", "exported_namespace": "shop",
    "subscriptionID": "00000000-0000-0000-0000-000000000000", "mechanism": "oauth", "instance_name": "web",
    "app": "checkout", "job": "", "instance": "", "name": "",
}
_SKIP_LABELS = {"le", "quantile", "__name__", "alertname", "severity"}
_NAME_BY_EXPORTER = [("systemd", "nginx.service"), ("node-exporter", "nginx.service"),
                     ("google-cadvisor", "checkout"), ("pve", "web-01"), ("process", "nginx"),
                     ("windows", "W3SVC"), ("vmware", "web-01"), ("ceph", "osd.3")]


def _target(rule: CatalogueRule) -> tuple[str, str, str]:
    key = f"{rule.service} {rule.exporter}".lower()
    for sub, job, host, port in _TARGETS:
        if sub in key:
            return job, host, port
    return re.sub(r"[^a-z0-9]+", "-", rule.service.lower()).strip("-"), "app-01", "8080"


def _label_value(label: str, rule: CatalogueRule, host: str) -> str:
    if label == "name":
        key = f"{rule.service} {rule.exporter}".lower()
        if "node-exporter" in key and "systemd" not in rule.query and "unit" not in rule.query:
            return host
        return next((v for sub, v in _NAME_BY_EXPORTER if sub in key), "checkout")
    if label in ("host", "hostname", "nodename"):
        return "compute-01" if "openstack" in rule.service.lower() else host
    if label == "service" and "openstack" in rule.service.lower():
        low = rule.name.lower()
        return "neutron-l3-agent" if "neutron" in low else "cinder-volume" if "cinder" in low else "nova-compute"
    if label == "device" and ("smartctl" in rule.exporter or "node_disk_" in rule.query):
        return "sda"
    return _LABEL_VALUES.get(label) or f"{label.replace('_', '-')}-1"


def _used_labels(rule: CatalogueRule) -> tuple[list[str], dict[str, str]]:
    """Label names the rule keeps or reads, and the fixed values its equality matchers pin."""
    names: list[str] = []
    pinned: dict[str, str] = {}
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", rule.query):
        names += [x.strip() for x in group.split(",") if x.strip()]
    for body in re.findall(r"\{([^}]*)\}", rule.query):
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body):
            if op == "=" and label not in _SKIP_LABELS:
                pinned.setdefault(label, value)
            elif op == "=~" and label not in _SKIP_LABELS and re.fullmatch(r"[\w.:/-]+(\|[\w.:/-]+)*", value):
                pinned.setdefault(label, value.split("|")[0])
            names.append(label)
    names += re.findall(r"\$labels\.(\w+)", rule.description)
    return [n for n in dict.fromkeys(names) if n not in _SKIP_LABELS and re.fullmatch(r"\w+", n)], pinned


def _aggregated_away(query: str) -> list[str] | None:
    """The labels an outermost aggregation keeps (None: the series keep their target labels)."""
    q = query.strip()
    if q.startswith("absent("):
        return []
    m = re.match(r"\(?\s*(?:sum|count|max|min|avg|topk|bottomk|count_values)\s*(?:by\s*\(([^)]*)\))?\s*\(", q)
    if m is None:
        m2 = re.match(r"\(?\s*(?:sum|count|max|min|avg)\s*\(.*\)\s*by\s*\(([^)]*)\)", q)
        if m2 is None:
            return None
        keep = m2.group(1)
    else:
        keep = m.group(1) or ""
    return [x.strip() for x in keep.split(",") if x.strip()]


def target_labels(rule: CatalogueRule) -> dict[str, str]:
    job, host, port = _target(rule)
    used, pinned = _used_labels(rule)
    kept = _aggregated_away(rule.query)
    labels: dict[str, str] = {}
    if kept is None or "instance" in kept:
        labels["instance"] = host if port == "443" else f"{host}:{port}"
        if port == "443":
            labels["instance"] = f"https://{host}"
    if kept is None or "job" in kept or "job" in pinned:
        labels["job"] = job
    for name in used:
        if kept is not None and name not in kept and name not in pinned and name not in ("instance", "job"):
            if name not in re.findall(r"\$labels\.(\w+)", rule.description):
                continue
        if name == "instance" and "instance" not in labels:
            if kept is None or "instance" in kept or name in re.findall(r"\$labels\.(\w+)", rule.description):
                labels["instance"] = f"{host}:{port}"
            continue
        if name == "job":
            labels.setdefault("job", pinned.get("job", job))
            continue
        labels.setdefault(name, pinned.get(name) or _label_value(name, rule, host))
    for name, value in pinned.items():
        if name in labels or name in ("instance",) or (kept is not None and name not in kept and name != "job"):
            continue
        labels[name] = value
    if "job" in pinned:
        labels["job"] = pinned["job"]
    return labels


# ----------------------------------------------------------------------------------- templates --
def firing_value(query: str) -> float:
    """A value on the firing side of the expression's first comparison (its threshold; later ones are
    usually guards such as `and ... == 0`)."""
    comps = re.findall(r"(>=|<=|==|!=|>|<)\s*(-?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", query)
    if not comps:
        return 1.0
    op, num = comps[0]
    x = float(num)
    if op in (">", ">="):
        return round(x * 1.15 + 1 if x >= 1 else x + (1 - x) * 0.5 if 0 < x < 1 else x + 1, 4)
    if op in ("<", "<="):
        return round(x * 0.5, 4) if x > 0 else x - 1
    return x


def _fmt_value(value: float, pipe: str) -> str:
    if "humanizePercentage" in pipe:
        return f"{value * 100:.4g}%"
    if "humanize" in pipe or "printf" in pipe:
        return f"{value:.4g}"
    return f"{value:g}"


def fill_template(text: str, labels: dict[str, str], value: float) -> str:
    """Fill `{{ ... }}` the way Prometheus would for the common forms; anything else renders empty."""

    def one(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        lab = re.search(r"\$labels\.(\w+)", expr)
        if lab:
            return labels.get(lab.group(1), "")
        if "$value" in expr:
            return _fmt_value(value, expr)
        if re.fullmatch(r"\$labels", expr):
            return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(labels.items())) + "]"
        return ""

    return re.sub(r"\{\{-?(.*?)-?\}\}", one, text)


def render(rule: CatalogueRule) -> AlertmanagerWebhook:
    """The webhook Alertmanager would POST when this rule fires on one realistic target."""
    series = target_labels(rule)
    labels = {"alertname": rule.alertname, **series, "severity": rule.severity}
    value = firing_value(rule.query)
    series_labels = {k: v for k, v in labels.items() if k != "severity"}
    summary_key = "instance" if "instance" in labels else next((k for k in series if k != "job"), "job")
    annotations = {
        "summary": f"{rule.name} ({summary_key} {labels.get(summary_key, '')})".strip(),
        "description": fill_template(rule.description, series_labels, value)
        + f"\n  VALUE = {_fmt_value(value, '')}\n  LABELS = "
        + fill_template("{{ $labels }}", series_labels, value),
    }
    url = f"{PROMETHEUS}/graph?g0.expr={quote(rule.query, safe='')}&g0.tab=1"
    fingerprint = hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]
    alert = Alert(status="firing", labels=labels, annotations=annotations, startsAt=STARTS_AT,  # type: ignore[arg-type]
                  generatorURL=url, fingerprint=fingerprint)
    group_key = f'{{}}:{{alertname="{rule.alertname}"}}'
    return AlertmanagerWebhook(groupKey=group_key, status="firing", receiver="aiops",
                               groupLabels={"alertname": rule.alertname}, commonLabels=labels,
                               commonAnnotations=annotations, externalURL="http://alertmanager.example:9093",
                               alerts=[alert])


def rendered(data_dir: Path) -> Iterator[tuple[CatalogueRule, AlertmanagerWebhook]]:
    for rule in load_catalogue(data_dir):
        yield rule, render(rule)


def catalogue_summary(rules: list[CatalogueRule]) -> dict[str, Any]:
    by_group: dict[str, int] = {}
    for r in rules:
        by_group[r.group] = by_group.get(r.group, 0) + 1
    return {"rules": len(rules), "by_group": by_group}
