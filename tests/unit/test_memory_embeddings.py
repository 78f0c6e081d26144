"""Embeddings: the OpenAI-compatible client against a local /v1/embeddings double, and backend choice."""

from __future__ import annotations

import math

import pytest

from core.settings import load_settings
from memory.embeddings import (
    EmbeddingError,
    HttpEmbedder,
    LocalEmbedder,
    embeddings_url,
    get_embedder,
    resolve_model_path,
)
from tests.sim.embeddings_server import EmbeddingsServer


def test_embeddings_url_accepts_base_with_or_without_v1():
    assert embeddings_url("http://h:8080") == "http://h:8080/v1/embeddings"
    assert embeddings_url("http://h:8080/v1/") == "http://h:8080/v1/embeddings"
    assert embeddings_url("http://h:8080/v1/embeddings") == "http://h:8080/v1/embeddings"


def test_http_embedder_batches_reorders_and_normalises():
    with EmbeddingsServer(dim=16, api_key="sekret") as srv:
        emb = HttpEmbedder(srv.base_url + "/v1", model="mini", api_key="sekret", batch_size=2)
        texts = ["disk full on node-1", "disk full on node-2", "certificate expired", "pod crash looping", "x"]
        vectors = emb.embed(texts)
        assert len(srv.requests) == 3  # 2 + 2 + 1
        assert all(r["body"]["model"] == "mini" for r in srv.requests)
        assert srv.requests[0]["headers"]["Authorization"] == "Bearer sekret"
        assert [len(v) for v in vectors] == [16] * 5 and emb.dim == 16
        assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vectors)
        # the server answers in reverse order: the client must put vectors back by `index`
        alone = emb.embed(["certificate expired"])[0]
        assert vectors[2] == pytest.approx(alone)

        def cos(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
        emb.close()


def test_http_embedder_dim_probe_and_empty_input():
    with EmbeddingsServer(dim=24) as srv:
        emb = HttpEmbedder(srv.base_url)
        assert emb.embed([]) == []
        assert len(srv.requests) == 0
        assert emb.dim == 24 and len(srv.requests) == 1


def test_http_embedder_retries_server_errors_then_succeeds():
    with EmbeddingsServer(dim=8) as srv:
        srv.fail_next = [503, 429]
        emb = HttpEmbedder(srv.base_url, retries=2)
        assert len(emb.embed(["a"])[0]) == 8
        assert len(srv.requests) == 3


def test_http_embedder_client_error_is_not_retried_and_is_one_clear_error():
    with EmbeddingsServer(dim=8, api_key="right") as srv:
        emb = HttpEmbedder(srv.base_url, api_key="wrong", retries=3)
        with pytest.raises(EmbeddingError, match="HTTP 401"):
            emb.embed(["a"])
        assert len(srv.requests) == 1


def test_http_embedder_unreachable_endpoint_raises_embedding_error():
    with EmbeddingsServer() as srv:
        url = srv.base_url
    emb = HttpEmbedder(url, retries=1, timeout=2)
    with pytest.raises(EmbeddingError, match="failed"):
        emb.embed(["a"])


def test_get_embedder_picks_endpoint_when_configured(tmp_path):
    remote = get_embedder(load_settings(AIOPS_DATA_DIR=tmp_path, EMBEDDINGS_BASE_URL="http://127.0.0.1:9/v1"))
    assert isinstance(remote, HttpEmbedder) and remote.url == "http://127.0.0.1:9/v1/embeddings"
    local = get_embedder(load_settings(AIOPS_DATA_DIR=tmp_path))
    assert isinstance(local, LocalEmbedder)
    assert local.dim == 384  # known without loading the model


def test_local_model_path_is_bundled_and_unknown_models_are_refused(tmp_path):
    path = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    assert (path / "model.safetensors").is_file() and (path / "modules.json").is_file()
    assert resolve_model_path(str(tmp_path)) == tmp_path  # a local directory is accepted as is
    with pytest.raises(EmbeddingError, match="never downloaded"):
        resolve_model_path("BAAI/bge-small-en")
