"""Incident and runbook memory on a real milvus-lite file with the real MiniLM embeddings."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memory.embeddings import LocalEmbedder
from memory.incidents import INCIDENTS, PROP_VERSION, RUNBOOKS, SCHEMA_VERSIONS, IncidentMemory
from memory.records import IncidentRecord, RunbookDoc
from tests.sim.embeddings_server import EmbeddingsServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    emb = LocalEmbedder()
    emb.embed(["warm up"])  # the model loads once per process; pay for it once per module
    return emb


def incident(id: str, alertname: str, service: str, symptoms: str, **kw: object) -> IncidentRecord:
    base = dict(id=id, signature=f"{alertname}|{service}", alertname=alertname, service=service, symptoms=symptoms,
                labels={"namespace": "shop", "severity": "critical"}, root_cause_component=service,
                root_cause="", actions=[], recovered=True, occurred_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    base.update(kw)
    return IncidentRecord(**base)  # type: ignore[arg-type]


RUNBOOKS_DOCS = [
    RunbookDoc(id="rb:crash", alertname="KubePodCrashLooping", component="kubernetes",
               meaning="Pod is in CrashLoop which means the app dies or is unresponsive and kubernetes restarts it.",
               diagnosis="kubectl describe pod; kubectl logs --previous", mitigation="Fix the app start-up.",
               source="https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"),
    RunbookDoc(id="rb:disk", alertname="NodeFilesystemSpaceFillingUp", component="node",
               meaning="A filesystem is predicted to run out of free disk space soon.",
               diagnosis="du -sh /var/*", mitigation="Delete old logs or grow the volume.", source="node"),
    RunbookDoc(id="rb:cert", alertname="KubeClientCertificateExpiration", component="kubernetes",
               meaning="A client certificate used to authenticate to the apiserver is expiring.",
               diagnosis="Check certificate dates.", mitigation="Rotate the certificate.", source="k8s"),
]


def test_local_model_is_shared_normalised_and_semantic(embedder: LocalEmbedder):
    other = LocalEmbedder()
    assert other.loaded  # a second instance reuses the process-wide model
    a, b, c = other.embed(["disk is almost full", "filesystem has little free space left", "TLS certificate expired"])
    assert len(a) == embedder.dim == 384
    assert abs(sum(x * x for x in a) - 1.0) < 1e-4

    def cos(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cos(a, b) > cos(a, c) + 0.2
    assert other.embed([]) == []


def test_construction_is_lazy(tmp_path: Path):
    mem = IncidentMemory(str(tmp_path / "lazy" / "milvus.db"))
    assert mem._client_obj is None and mem._embedder is None
    assert not (tmp_path / "lazy").exists()
    mem.close()  # closing an unopened memory is a no-op


def test_remember_search_filters_and_idempotent_upsert(tmp_path: Path, embedder: LocalEmbedder):
    mem = IncidentMemory(str(tmp_path / "m.db"), embedder=embedder)
    actions = [{"name": "restart_service", "target": "web-01", "parameters": {"service": "php-fpm"}}]
    mem.remember_many([
        incident("i-1", "HostHighCpuLoad", "web-01", "php-fpm workers exhausted, cpu 95%, nginx upstream timed out",
                 root_cause="slow queries", actions=actions),
        incident("i-2", "HostOutOfDiskSpace", "db-01", "disk /var almost full, postgres cannot write WAL",
                 recovered=None),
        incident("i-3", "HostHighCpuLoad", "web-02", "cpu saturated by php-fpm pool reaching max_children",
                 recovered=False),
    ])
    hits = mem.similar_incidents("nginx upstream timeouts while php-fpm is at max children and CPU high", limit=3)
    assert [h.record.id for h in hits][:1] in (["i-1"], ["i-3"]) and hits[-1].record.id == "i-2"
    assert hits[0].score > hits[-1].score
    top = {h.record.id: h.record for h in hits}["i-1"]
    assert top.actions == actions and top.recovered is True and top.labels["namespace"] == "shop"
    assert top.occurred_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert {h.record.id: h.record for h in hits}["i-2"].recovered is None
    assert {h.record.id: h.record for h in hits}["i-3"].recovered is False

    only_web2 = mem.similar_incidents("cpu high", service="web-02")
    assert [h.record.id for h in only_web2] == ["i-3"]
    disk = mem.similar_incidents("cpu high", alertname="HostOutOfDiskSpace")
    assert [h.record.id for h in disk] == ["i-2"]
    assert mem.similar_incidents("cpu", service='we"b-01') == []  # quotes in filter values are escaped

    # remembering the same id again updates the row instead of adding one
    mem.remember(incident("i-1", "HostHighCpuLoad", "web-01", "php-fpm workers exhausted", root_cause="fixed cause"))
    mem.remember(incident("i-1", "HostHighCpuLoad", "web-01", "php-fpm workers exhausted", root_cause="fixed cause"))
    assert mem.counts()["incidents"] == 3
    again = mem.similar_incidents("php-fpm workers exhausted", service="web-01", limit=1)
    assert again[0].record.root_cause == "fixed cause"
    # a changed alert name moves the incident to another partition without leaving a copy behind
    mem.remember(incident("i-2", "NodeFilesystemAlmostOutOfSpace", "db-01", "disk /var almost full"))
    assert mem.counts()["incidents"] == 3
    assert mem.similar_incidents("disk full", alertname="HostOutOfDiskSpace") == []
    assert [h.record.id for h in mem.similar_incidents("disk", alertname="NodeFilesystemAlmostOutOfSpace")] == ["i-2"]
    mem.close()


def test_runbooks_idempotent_hybrid_search_and_strict_alertname_filter(tmp_path: Path, embedder: LocalEmbedder):
    mem = IncidentMemory(str(tmp_path / "m.db"), embedder=embedder)
    assert mem.add_runbooks(RUNBOOKS_DOCS) == 3
    assert mem.add_runbooks(RUNBOOKS_DOCS + RUNBOOKS_DOCS[:1]) == 3
    assert mem.counts() == {"incidents": 0, "runbooks": 3}
    hits = mem.search_runbooks("Pod shop/checkout is restarting repeatedly (CrashLoopBackOff)", limit=3)
    assert hits[0].doc.id == "rb:crash" and hits[0].doc.mitigation == "Fix the app start-up."
    assert hits[0].score > hits[1].score
    dense = mem.search_runbooks("the volume on /var has little free space left", limit=1, mode="dense")
    assert dense[0].doc.id == "rb:disk"
    only = mem.search_runbooks("pod restarting", alertname="KubeClientCertificateExpiration")
    assert [h.doc.id for h in only] == ["rb:cert"]
    assert mem.search_runbooks("pod restarting", alertname="NoSuchAlert") == []
    # the lexical index follows new rows
    mem.add_runbooks([RunbookDoc(id="rb:etcd", alertname="etcdNoLeader", component="etcd",
                                 meaning="The etcd cluster member has no leader.", source="etcd")])
    assert mem.search_runbooks("etcd member reports no leader", limit=1)[0].doc.id == "rb:etcd"
    mem.close()


def test_memory_reopens_with_its_data(tmp_path: Path, embedder: LocalEmbedder):
    uri = str(tmp_path / "m.db")
    with IncidentMemory(uri, embedder=embedder) as mem:
        mem.remember(incident("i-9", "KubePodCrashLooping", "api", "api pod restarting"))
    with IncidentMemory(uri, embedder=embedder) as mem:
        assert mem.counts()["incidents"] == 1
        assert mem.similar_incidents("api pod restarting")[0].record.id == "i-9"


def _old_v1_collection(uri: str) -> None:
    """What an older aiops wrote: fewer fields, an 8-d vector, schema version 1."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("service", DataType.VARCHAR, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=1024)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=8)
    index = client.prepare_index_params()
    index.add_index("embedding", index_type="FLAT", metric_type="COSINE")
    client.create_collection(INCIDENTS, schema=schema, index_params=index, properties={PROP_VERSION: "1"})
    client.insert(INCIDENTS, [
        {"id": "old-1", "service": "payments", "text": "payments api returns 502, upstream connection refused",
         "embedding": [0.1] * 8},
        {"id": "old-2", "service": "search", "text": "elasticsearch heap full, gc pauses", "embedding": [0.2] * 8},
    ])
    client.flush(INCIDENTS)
    client.close()


def test_old_schema_is_migrated_not_crashed(tmp_path: Path, embedder: LocalEmbedder, caplog: pytest.LogCaptureFixture):
    uri = str(tmp_path / "old.db")
    _old_v1_collection(uri)
    caplog.set_level(logging.WARNING, logger="memory.incidents")
    with IncidentMemory(uri, embedder=embedder) as mem:
        assert mem.counts()["incidents"] == 2
        hit = mem.similar_incidents("502 from the payments api", limit=1)[0]
        assert hit.record.id == "old-1" and hit.record.service == "payments"
        assert "connection refused" in hit.record.symptoms
        props = mem._client().describe_collection(INCIDENTS)["properties"]
        assert props[PROP_VERSION] == str(SCHEMA_VERSIONS[INCIDENTS]) and props["aiops.embedding_dim"] == "384"
    assert any("migrated Milvus collection incidents" in r.getMessage() and f"v1 -> v{SCHEMA_VERSIONS[INCIDENTS]}" in r.getMessage()
               for r in caplog.records)


def test_unreadable_old_collection_is_kept_aside_and_replaced(tmp_path: Path, embedder: LocalEmbedder,
                                                              caplog: pytest.LogCaptureFixture,
                                                              monkeypatch: pytest.MonkeyPatch):
    uri = str(tmp_path / "old.db")
    _old_v1_collection(uri)

    def broken(self: IncidentMemory, name: str) -> list[dict]:
        raise RuntimeError("corrupt segment")

    monkeypatch.setattr(IncidentMemory, "_read_all", broken)
    caplog.set_level(logging.WARNING, logger="memory.incidents")
    with IncidentMemory(uri, embedder=embedder) as mem:
        assert mem.counts()["incidents"] == 0
        backups = [c for c in mem._client().list_collections() if c.startswith("incidents_backup_")]
        assert len(backups) == 1
    assert any("could not be read" in r.getMessage() and "kept as incidents_backup_" in r.getMessage()
               for r in caplog.records)


def test_switching_embedder_reembeds_instead_of_mixing_vector_spaces(tmp_path: Path, embedder: LocalEmbedder):
    """Rows written through a 16-d endpoint are re-embedded when the 384-d local model takes over."""
    uri = str(tmp_path / "m.db")
    from memory.embeddings import HttpEmbedder

    with EmbeddingsServer(dim=16) as srv:
        with IncidentMemory(uri, embedder=HttpEmbedder(srv.base_url)) as mem:
            mem.add_runbooks(RUNBOOKS_DOCS)
            assert mem.search_runbooks("CrashLoopBackOff pod restarts", limit=1)[0].doc.id == "rb:crash"
            assert len(srv.requests) >= 2
    with IncidentMemory(uri, embedder=embedder) as mem:
        assert mem.counts()["runbooks"] == 3
        desc = mem._client().describe_collection(RUNBOOKS)
        dims = [f["params"]["dim"] for f in desc["fields"] if f["name"] == "embedding"]
        assert dims == [384]
        assert mem.search_runbooks("disk nearly full", limit=1, mode="dense")[0].doc.id == "rb:disk"


def test_a_runbook_with_steps_outranks_the_same_rule_catalogue_entry(tmp_path: Path, embedder: LocalEmbedder):
    """The awesome-prometheus-alerts entry of the same alert says the same words (it copied the rule's
    description) but has no steps: the runbook comes first (memory.incidents.RULE_ENTRY_PENALTY)."""
    mem = IncidentMemory(str(tmp_path / "m.db"), embedder=embedder)
    rule = RunbookDoc(id="aw:sts", alertname="KubernetesStatefulsetReplicasMismatch", component="Kubernetes",
                      meaning="Kubernetes StatefulSet replicas mismatch. StatefulSet does not match the expected "
                              "number of replicas.",
                      diagnosis="Query: kube_statefulset_status_replicas_ready != kube_statefulset_status_replicas")
    book = RunbookDoc(id="po:sts", alertname="KubeStatefulSetReplicasMismatch", component="kubernetes",
                      meaning="StatefulSet has not matched the expected number of replicas.",
                      diagnosis="Check the StatefulSet's events and the pods that are not ready.",
                      mitigation="Fix the failing pod, or scale the StatefulSet back to what the nodes can hold.")
    mem.add_runbooks([rule, book])
    hits = mem.search_runbooks("StatefulSet shop/orders-db has not matched the expected number of replicas "
                               "for longer than 15 minutes.", limit=2)
    assert [h.doc.id for h in hits] == ["po:sts", "aw:sts"]
    mem.close()
