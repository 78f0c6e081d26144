"""Reading an alert the way its rule's authors meant it, without an LLM.

An alert from a real rule says what it is about in four places: its name ("HostSystemdServiceCrashed"),
the exporter that scraped it (`job`), the metric names of its expression (in `generatorURL`), and its
annotations. This module turns those into a typed reading: the kind of problem (`Category`), where the
thing lives (`Domain`: host, container, Kubernetes, database, broker, ... the catalogue's groups), the
host (instance without the exporter port) and the affected service (from the labels the rule uses:
a systemd unit `name`, `service`, `container`, `deployment`, `pod`, ...).

The category rules are ordered: the first that matches the alert name wins, then the expression's
metric names, then the annotations. The order encodes the labelling rules of evals/ALERT_LABELS.md
(e.g. a SMART or offline disk is hardware before it is disk; a restart loop is a crash loop before it
is memory). They were tuned on the dev split of the labelled suite only.
"""

from __future__ import annotations

import re
from typing import get_args

from pydantic import BaseModel, Field

from core.models import Alert, Category, Domain
from core.subject import host_of, service_of
from tools.analysis.alert_query import alert_expression

CATEGORIES: tuple[str, ...] = get_args(Category)
DOMAINS: tuple[str, ...] = get_args(Domain)

# (category, pattern) over lower-case words ("HostOutOfDiskSpace" -> "host out of disk space").
_CATEGORY_RULES: list[tuple[Category, str]] = [
    ("anomaly", r"anomal"),
    ("certificate", r"\bcert(ificate)?s?\b|\bssl\b|\btls\b"),
    ("hardware", r"\bsmart\b|smartctl|\bipmi\b|temperature|\btemp\b|thermal|\bfans?\b|power supply|\bpsu\b|"
                 r"sensor|\braid\b|\bmdadm\b|\bedac\b|\becc\b|hardware|battery|\bups\b|on battery|"
                 r"disk (offline|failing|failure|failed|fault|dead|missing)|(offline|failed|faulty) disk|"
                 r"nvme|wearout|wear level|media errors?|reallocated|pending sectors?|bad blocks?|voltage|"
                 r"chassis|physical disk|drive (status|failure)|disk drive status|degraded array|"
                 r"osd down|device (failure|error)|volume failures?"),
    ("time", r"\bclock\b|\bntp\b|time (skew|drift|offset|sync)|timesync|clock skew"),
    ("crashloop", r"crash ?loop|restart(s|ing|ed)?\b|back ?off|oom ?kill|flapping service|too many restarts"),
    # One unit/process/container/agent that is not running: the down-word follows the unit word directly.
    ("service_down", r"(systemd|\bunit|\bservice|\bprocess(es)?( group)?|\bcontainer|\bagent|\bdaemon|"
                     r"exporter group)s? (crashed|failed|down|stopped|not running|killed|exited|absent|missing|"
                     r"inactive|dead)\b|systemd .*(crashed|failed)\b|\bno process(es)?\b"),
    # Links between clusters are network before they are cluster health.
    ("network", r"remote cluster|clustermesh|kvstoremesh"),
    ("replication", r"replicat|\bslave\b|standby|galera|\blag\b.*(replica|slave|standby|wal|sync)|"
                    r"falling behind|out of sync|\bisr\b|under ?replicated|\bwal receiver\b|replica lag|"
                    r"mirror|donor|resync|topics? replicas|in ?sync replicas"),
    ("security", r"\bauth(entication|orization)?\b.*fail|login fail|unauthori[sz]ed|brute|\bsealed\b|"
                 r"forbidden|\bdenied\b|security|\binvalid (token|signature)\b|failed logins?|threat|attack|"
                 r"\bddos\b|\bwaf\b"),
    ("disk_io", r"disk (io|i o|read|write|latency|saturation|queue)|\bio (wait|util|saturation)|iops|"
                r"iowait|io time|io utilization"),
    ("disk", r"disk|filesystem|\bfs\b|inode|out of (disk|space)|volume.*(full|space|usage|fill)|"
             r"persistent ?volume|\bpvc\b|tablespace|storage.*(full|usage|space|fill|capacity|quota)|"
             r"near ?full|\bfull\b|free space|space (left|low|usage)|low (disk )?space|bucket.*(full|quota|size)|"
             r"pool (full|capacity|usage|space)|(binlog|wal|log) (size|space|dir)"),
    ("memory", r"memory|\bmem\b|\boom\b|\bswap\b|\bheap\b|\bgc\b|garbage|page faults?|evict|direct buffer|"
               r"\brss\b|allocated objects|allocation rate"),
    ("cpu", r"\bcpu\b|\bload\b|throttl|steal|context switch"),
    ("job_failure", r"\bjob\b.*(fail|error|stuck|not (run|complet))|cron ?job.*(fail|late|missed|not)|backup|"
                    r"pipeline|\bbuild\b|compact(ion|or).*(fail|halt|not (run|upload))|compactor halted|"
                    r"\btask\b.*(fail|error|stuck)|\bsync\b.*fail|last (successful|run)|not (run|completed)|"
                    r"\bdeploy(ment)? fail|jobs? (failed|failing)|no records processed|not processed|"
                    r"missed trigger"),
    ("config", r"config|misconfig|reload|not synced|out ?of ?sync|drift|\bsync status\b|\bschema\b|"
               r"version (mismatch|deviations?|changed)|suspended"),
    ("cluster", r"cluster (health|status|red|yellow|degraded|unhealthy|size|state|not healthy|members?|nodes?)|"
                r"quorum|leader|split ?brain|election|\bmembers?\b|\bpeers?\b.*(down|missing|lost)|"
                r"rebalanc|partition (leader|offline|under)|\bshard|\bnodes? (not ready|down|missing|lost)|"
                r"\braft\b|gossip|consensus|unassigned|primary (changed|missing)|failover|role changed|"
                r"\bpgs?\b|placement group|\bmon(itor)?s? (down|quorum)|out of service|dead ?(data)?nodes?|"
                r"no (synced )?tenants|no rule groups|\bring\b|missing master|no master|live nodes?"),
    ("queue", r"queue(?!d connections)|backlog|\blag\b|unacked|messages? (ready|pending|stuck)|\bpending\b|"
              r"dead ?letter|consumer|\boffset\b|undelivered|outstanding"),
    ("saturation", r"connections?|file descriptors?|\bfds?\b|threads?|\bpool\b|slots?|limit|max ?clients|"
                   r"\bworkers?\b|sessions?|processes|capacity|quota|conntrack|saturat|exhaust|too many|"
                   r"utili[sz]ation|usage (high|too high)|rate limit|\bbusy\b|overload|requests? queued|"
                   r"high (usage|utilization)|\bhpa\b|maxed|\bscal(e|ing)\b|deadlocks?|locks?\b|"
                   r"subscriptions|\bmax\b.*reached|blocked (tasks|evaluations)|backpressure|goroutine|in ?flight|"
                   r"cardinality|exceeded|(high|unusually high) (total )?(request|query|indexing) rate"),
    # Counted timeouts and refusals are failed operations (not slowness, not a limit).
    ("errors", r"time ?outs?|timing out|timed out|refused"),
    ("latency", r"latency|\bslow|duration|response time|\bp9[59]\b|took too long|\bdelay"),
    ("network", r"interface|\blink\b|uplink|\bflap|packets?|network|\bbgp\b|\bospf\b|\bdns\b|bandwidth|"
                r"throughput|\btcp\b|\budp\b|\bnic\b|\bbond\b|wireguard|handshake|\broute\b|\bmtu\b|"
                r"speed ?test|\bping\b|\bicmp\b|jitter|packet loss|upload|download|traffic|ipsec|vpn"),
    ("errors", r"error|\b5xx\b|\b4xx\b|fail(ures?|ed|ing|s)?\b|exception|reject|dropp(ed|ing)|drops\b|corrupt|"
               r"panic|invalid|\bbad\b|refused|\baborted?\b|\bcode\b|unsuccessful|unhealthy responses|"
               r"\bissues?\b|\bretr(y|ies)\b|no successful|not succeeding"),
    ("availability", r"\bdown\b|unreachable|unavailable|absent|missing|not (running|ready|up|healthy|connected)|"
                     r"offline|\bdead\b|disappeared|stopped|unhealthy|no (target|leader|data|healthy)|"
                     r"\bempty\b|\bstatus\b|\bhealth\b|probe|\bready\b|replicas? mismatch|not available|"
                     r"\bup\b|availability|uptime|sealed|\blost\b|incidents?|eject"),
]

# Counters of failed operations in the expression outweigh a vaguer name ("...RequestUnavailable..."
# counting `*_exceptions_total` reports errors, not an instance that is down).
_ERROR_COUNTER = re.compile(r"_(errors?|failures?|exceptions|failed)(_total|_count)?$")
_VAGUE: set[str] = {"availability", "latency", "unknown"}

# (domain, pattern over "job alertname metric prefixes"), first match wins. Order: specific before generic.
_DOMAIN_RULES: list[tuple[Domain, str]] = [
    ("storage_cluster", r"\bceph|\bminio|\bzfs|\bzpool|openebs|\bcstor|\bjiva"),
    ("hardware", r"smartctl|\bsmart\b|\bipmi|apcupsd|\bups\b|\bapc"),
    ("virtualization", r"\bpve\b|proxmox|vmware|vcenter|\besxi"),
    ("kubernetes", r"kube|kubernetes|\bk8s"),
    ("container", r"container|cadvisor|docker"),
    ("cloud", r"cloudwatch|\baws\b|stackdriver|digitalocean|\bazure|\bgcp\b"),
    ("database", r"mysql|\bpg_|postgres|patroni|pgbouncer|redis|memcache|mongo|elasticsearch|opensearch|"
                 r"meilisearch|cassandra|clickhouse|couchdb|\bsolr|oracle|mssql|sql ?server"),
    ("broker", r"rabbitmq|kafka|zookeeper|pulsar|\bnats\b|\bzk\b"),
    ("proxy", r"nginx|\bapache\b|haproxy|traefik|caddy|envoy|linkerd|istio"),
    ("runtime", r"php|\bfpm|\bjvm|\bjava|golang|\bgo_|ruby|python|sidekiq"),
    ("data", r"flink|spark|hadoop|hdfs|\byarn"),
    ("orchestrator", r"nomad|consul|\betcd|openstack"),
    ("ci", r"jenkins|argocd|\bflux|gitlab|gitaly|workhorse|spinnaker"),
    ("observability", r"prometheus|alertmanager|thanos|\bloki|promtail|cortex|tempo|mimir|alloy|otel|"
                      r"opentelemetry|jaeger|netdata|graph.?node|litellm|pushgateway"),
    ("network", r"snmp|junos|juniper|coredns|\bdns\b|freeswitch|vault|keycloak|cloudflare|cilium|wireguard|"
                r"speedtest|blackbox|\bprobe\b|\bssl\b|cert.?manager|routeros|mikrotik|router|switch"),
    ("host", r"\bnode\b|\bnode_|\bhost|windows|\bprocess|systemd|ebpf|namedprocess"),
]

_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "inf", "nan", "e", "m", "s", "h", "d", "w", "y", "ms",
}



class AlertReading(BaseModel):
    """What rule mode understood of one alert."""

    category: Category
    domain: Domain
    host: str = ""
    service: str = ""
    exporter: str = ""
    metrics: list[str] = Field(default_factory=list)
    matched: str = ""  # which signal decided the category (name, metrics, annotations)


def words(text: str) -> str:
    """CamelCase and snake_case split into lower-case words: "HostOomKill" -> "host oom kill"."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return re.sub(r"[_\W]+", " ", spaced).lower().strip()


def expression(alert: Alert) -> str:
    """The PromQL expression of the rule, from Prometheus' generatorURL (`/graph?g0.expr=...`): bounded and
    printable (`tools.analysis.alert_query.alert_expression`), else ""."""

    return alert_expression(alert.generator_url)


def metric_names(expr: str) -> list[str]:
    """Metric names in a PromQL expression (label matchers, grouping lists and functions removed)."""
    body = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", expr)
    body = re.sub(r"\{[^}]*\}", " ", body)
    body = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", body)
    body = re.sub(r"\[[^\]]*\]", " ", body)
    names = []
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", body):
        tail = body[m.end():].lstrip()
        name = m.group(0)
        if tail.startswith("(") or name.lower() in _PROMQL_WORDS or re.fullmatch(r"[0-9a-f]+", name):
            continue
        if m.start() > 0 and (body[m.start() - 1].isdigit() or body[m.start() - 1] == "."):
            continue  # a unit or exponent of a number (5m, 1e3)
        names.append(name)
    return list(dict.fromkeys(names))


def classify(text: str) -> Category:
    """The first category whose pattern matches the words of `text`, else "unknown"."""
    low = words(text)
    for category, pattern in _CATEGORY_RULES:
        if re.search(pattern, low):
            return category
    return "unknown"


def domain_of(job: str, name: str, metrics: list[str]) -> Domain:
    for text in (job.lower(), words(name).split(" ")[0] if name else "", " ".join(metrics).lower()):
        if not text:
            continue
        spaced = f" {text.replace('-', ' ')} "
        for domain, pattern in _DOMAIN_RULES:
            if re.search(pattern, spaced):
                return domain
    return "other"


def understand(alert: Alert) -> AlertReading:
    labels = alert.labels
    job = labels.get("job", "")
    metrics = metric_names(expression(alert))
    category = classify(alert.name)
    matched = "name"
    if category in _VAGUE and any(_ERROR_COUNTER.search(m) for m in metrics):
        category, matched = "errors", "metrics"
    if category == "unknown" and metrics:
        category = classify(" ".join(metrics))
        matched = "metrics"
    if category == "unknown":
        category = classify(" ".join([alert.annotations.get("summary", ""), alert.annotations.get("description", "")
                                      .split("\n  VALUE =")[0]]))
        matched = "annotations"
    return AlertReading(category=category, domain=domain_of(job, alert.name, metrics), host=host_of(labels),
                        service=service_of(labels, job), exporter=job, metrics=metrics,
                        matched=matched if category != "unknown" else "")
