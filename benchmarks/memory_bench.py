"""Incident-memory benchmark for milvus-lite: insert throughput and `similar_incidents` latency.

    PYTHONPATH=. .venv/bin/python benchmarks/memory_bench.py [--sizes 10000 100000] [--queries 200]
                                                            [--variants]
    PYTHONPATH=. .venv/bin/python benchmarks/memory_bench.py --smoke     # seconds; CI runs it

Not a test: it prints figures. The stored incidents are SYNTHETIC: random unit vectors (384-d, the
MiniLM dimension) with realistic scalar fields (50 services, 40 alert names, labels, actions), and
the queries are random unit vectors too, so the latency is Milvus search + result decoding through
the real `IncidentMemory.similar_incidents` path, without the embedding model. The query embedding
is measured separately (`--embed`), since it is a fixed per-query cost independent of store size.

Why HNSW + flush: milvus-lite keeps new rows in a memtable that is searched by brute force in
Python; only flushed segments get the FAISS index. `--variants` measures the alternatives at the
first size (memtable only, FLAT, IVF_FLAT, HNSW) so the choice is visible, not asserted.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memory.incidents import INCIDENTS, IncidentMemory  # noqa: E402
from memory.records import IncidentRecord

DIM = 384


CLUSTERS = 400  # incident "kinds" (alert x service); real embeddings cluster, uniform noise does not


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _centers() -> np.ndarray:
    return _unit(np.random.default_rng(42).standard_normal((CLUSTERS, DIM)))


def synthetic_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    """Stored incidents: a cluster centre plus noise (cosine to the centre ~0.8, like repeats of one
    kind of incident), so ANN recall is measured on data with structure, as real embeddings have."""
    centers = _centers()
    noise = rng.standard_normal((n, DIM)) * (0.75 / np.sqrt(DIM))
    return _unit(centers[rng.integers(0, CLUSTERS, n)] + noise)


class SyntheticEmbedder:
    """Synthetic vectors instead of a model. A query is a fresh occurrence of a random incident kind
    (centre + noise); `uniform=True` gives structureless random vectors (the ANN worst case). The
    last query vector is kept so recall can be checked against an exact search."""

    model_name = "synthetic"

    def __init__(self, seed: int = 7, uniform: bool = False) -> None:
        self._rng = np.random.default_rng(seed)
        self.uniform = uniform
        self.last: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return DIM

    def embed(self, texts: list[str]) -> list[list[float]]:
        if self.uniform:
            v = _unit(self._rng.standard_normal((len(texts), DIM)))
        else:
            v = synthetic_vectors(len(texts), self._rng)
        self.last = v[0]
        return v.tolist()


class VariantMemory(IncidentMemory):
    """IncidentMemory with another vector index, for the comparison only."""

    def __init__(self, uri: str, index: str, embedder: Any) -> None:
        super().__init__(uri, embedder=embedder)
        self.index = index

    def _index_params(self, name: str) -> Any:
        params = self._client().prepare_index_params()
        extra = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 256}}.get(self.index, {})
        params.add_index("embedding", index_type=self.index, metric_type="COSINE", params=extra)
        for field in ("signature", "alertname", "service", "outcome"):
            params.add_index(field, index_type="INVERTED")
        return params


def synthetic_rows(memory: IncidentMemory, n: int, start: int, rng: random.Random, vectors: np.ndarray) -> list[dict[str, Any]]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(start, start + n):
        svc, alert = f"svc-{i % 50}", f"Alert{i % 40}"
        rec = IncidentRecord(
            id=f"inc-{i:07d}", signature=f"{alert}:{svc}", alertname=alert, service=svc,
            symptoms=f"synthetic incident {i}: {alert} firing on {svc} with elevated error rate",
            labels={"namespace": "shop", "pod": f"{svc}-{i % 7}", "severity": rng.choice(["warning", "critical"])},
            root_cause_component=svc, root_cause="synthetic root cause",
            actions=[{"kind": "restart_service", "target": svc}], recovered=rng.random() < 0.8,
            occurred_at=base + timedelta(minutes=i),
        )
        rows.append(memory._incident_row(rec, vectors[i - start].tolist()))
    return rows


def wait_indexed(uri: str, timeout: float = 900.0) -> float:
    """milvus-lite builds segment indexes in a background thread after a flush; wait until every
    data segment has its vector index file (a milvus-lite detail, used by this benchmark only)."""
    root = Path(uri) / "collections" / INCIDENTS / "partitions"
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        segments = {p.stem for p in root.glob("*/data/*.parquet")}
        indexed = {p.name.split(".")[0] for p in root.glob("*/indexes/*.embedding.*")}
        if segments and segments <= indexed:
            break
        time.sleep(0.2)
    return time.perf_counter() - t0


def fill(memory: IncidentMemory, n: int, *, flush: bool, uniform: bool = False, batch: int = 2000) -> tuple[dict[str, float], np.ndarray]:
    """Insert n synthetic incidents through the collection `IncidentMemory` creates."""
    memory._ensure(INCIDENTS)
    client = memory._client()
    rng = random.Random(1)
    vrng = np.random.default_rng(1)
    stored = np.empty((n, DIM), dtype=np.float32)
    insert_s = 0.0
    for start in range(0, n, batch):
        size = min(batch, n - start)
        vec = _unit(vrng.standard_normal((size, DIM))) if uniform else synthetic_vectors(size, vrng)
        stored[start : start + size] = vec
        rows = synthetic_rows(memory, size, start, rng, vec)  # row building is not timed
        t0 = time.perf_counter()
        memory.insert_incident_rows(rows, fresh=True)  # remember()'s write path, minus embedding and id look-up
        insert_s += time.perf_counter() - t0
    flush_s = index_s = 0.0
    if flush:
        t0 = time.perf_counter()
        client.flush(INCIDENTS)
        flush_s = time.perf_counter() - t0
        index_s = wait_indexed(memory.uri)
    return {"insert_rows_per_s": n / insert_s, "insert_s": insert_s, "flush_s": flush_s, "index_s": index_s}, stored


def latency(memory: IncidentMemory, queries: int, stored: np.ndarray | None = None, **filters: str) -> dict[str, float]:
    """p50/p99 of `similar_incidents(limit=5)`; with `stored`, also recall@5 against exact cosine."""
    emb = memory.embedder
    assert isinstance(emb, SyntheticEmbedder)
    for _ in range(10):  # warm-up: first searches load segment indexes
        memory.similar_incidents("warm-up", limit=5, **filters)
    samples, hits = [], 0
    for _ in range(queries):
        t0 = time.perf_counter()
        got = memory.similar_incidents("q", limit=5, **filters)
        samples.append((time.perf_counter() - t0) * 1000)
        if stored is not None and emb.last is not None:
            exact = set(np.argsort(-(stored @ emb.last))[:5].tolist())
            hits += len(exact & {int(m.record.id.split("-")[1]) for m in got})
    samples.sort()
    return {
        "p50_ms": statistics.median(samples),
        "p99_ms": samples[min(len(samples) - 1, int(round(0.99 * len(samples))) - 1)],
        "recall5": hits / (5 * queries) if stored is not None else float("nan"),
    }


def bench_size(n: int, queries: int, uniform: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp:
        memory = IncidentMemory(str(Path(tmp) / "milvus.db"), embedder=SyntheticEmbedder(uniform=uniform))
        t, stored = fill(memory, n, flush=True, uniform=uniform)
        plain = latency(memory, queries, stored)
        alert = latency(memory, queries, alertname="Alert3")
        svc = latency(memory, queries, service="svc-3")
        print(f"{n:>7} incidents  HNSW  insert {t['insert_rows_per_s']:>6.0f} rows/s, flush {t['flush_s']:.1f}s, "
              f"index build {t['index_s']:.1f}s\n"
              f"         similar_incidents(alertname=...) [one partition]  p50 {alert['p50_ms']:6.1f} ms  "
              f"p99 {alert['p99_ms']:6.1f} ms\n"
              f"         similar_incidents() [all partitions]              p50 {plain['p50_ms']:6.1f} ms  "
              f"p99 {plain['p99_ms']:6.1f} ms  recall@5 {plain['recall5']:.3f}\n"
              f"         similar_incidents(service=...) [all partitions]   p50 {svc['p50_ms']:6.1f} ms  "
              f"p99 {svc['p99_ms']:6.1f} ms", flush=True)
        memory.close()


def bench_variants(n: int, queries: int, uniform: bool = False) -> None:
    variants = [("memtable only (no flush)", "HNSW", False), ("FLAT", "FLAT", True),
                ("IVF_FLAT nlist=256", "IVF_FLAT", True), ("HNSW M=16 ef=64", "HNSW", True)]
    for label, index, flush in variants:
        with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp:
            memory = VariantMemory(str(Path(tmp) / "milvus.db"), index, SyntheticEmbedder(uniform=uniform))
            t, stored = fill(memory, n, flush=flush, uniform=uniform)
            lat = latency(memory, min(queries, 100), stored)
            print(f"{n:>7} incidents  {label:<26} insert {t['insert_rows_per_s']:>6.0f} rows/s, index build "
                  f"{t['index_s']:.1f}s | p50 {lat['p50_ms']:.1f} ms p99 {lat['p99_ms']:.1f} ms "
                  f"recall@5 {lat['recall5']:.3f}", flush=True)
            memory.close()


def bench_embed(queries: int) -> None:
    from memory.embeddings import LocalEmbedder

    emb = LocalEmbedder()
    t0 = time.perf_counter()
    emb.embed(["load"])
    load = time.perf_counter() - t0
    samples = []
    for i in range(queries):
        t0 = time.perf_counter()
        emb.embed([f"KubePodCrashLooping pod shop/checkout-{i} is restarting 3 times / 10 minutes"])
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    t0 = time.perf_counter()
    emb.embed([f"runbook text number {i} " * 20 for i in range(256)])
    batch = 256 / (time.perf_counter() - t0)
    print(f"embedding (all-MiniLM-L6-v2, CPU): model load {load:.1f}s, one query p50 {statistics.median(samples):.1f} ms "
          f"p99 {samples[-1]:.1f} ms, batch throughput {batch:.0f} texts/s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--variants", action="store_true", help="compare index/flush choices at the first size")
    p.add_argument("--embed", action="store_true", help="also time the query embedding (loads the model)")
    p.add_argument("--uniform", action="store_true", help="structureless random vectors (ANN worst case)")
    p.add_argument("--smoke", action="store_true", help="1,000 incidents, 20 queries: the benchmark still runs")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.queries = [1000], 20
    kind = "uniform random" if args.uniform else f"clustered ({CLUSTERS} incident kinds, cosine ~0.8 to centre)"
    print(f"SYNTHETIC store: {kind} 384-d unit vectors + realistic scalar fields; queries are synthetic too")
    if args.variants:
        bench_variants(args.sizes[0], args.queries, args.uniform)
    for n in args.sizes:
        bench_size(n, args.queries, args.uniform)
    if args.embed:
        bench_embed(50)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
