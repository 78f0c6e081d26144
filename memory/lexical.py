"""A small in-process BM25 index used to rerank dense runbook hits.

Why not only dense vectors: alert texts are short and full of domain words ("etcd", "fsync",
"conntrack", "PLEG") that MiniLM was never trained on, so pure cosine confuses neighbouring runbooks
(KubeDeploymentReplicasMismatch vs KubeStatefulSetReplicasMismatch). A lexical score over the
runbook text separates them. Why not Milvus' own BM25 function: it needs Milvus >= 2.5 with a
sparse field and, in milvus-lite, keeps IDF per segment; a corpus of a few thousand runbooks is
cheap to score here and behaves the same against every Milvus deployment.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+|[0-9]+")

# Function words only: "not", "any", "some", "all", "out", "up", "down", "no" separate alerts
# (PrometheusOperatorNotReady, ...SendingAlertsToAnyAlertmanager) and must stay searchable.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does for from has have having he her
    his how if in into is it its itself may might of on or our should so such than that the their
    them then there these they this those to too was we were what when where which while who whom why
    will with would you your via also e g ie eg""".split()
)


def _stem(token: str) -> str:
    """Tiny suffix stripper: enough to match failing/failed/failures/fails without a stemmer package."""
    for suffix in ("ations", "ation", "ings", "ing", "ures", "ure", "ies", "ed", "es", "s"):
        if len(token) > len(suffix) + 3 and token.endswith(suffix):
            if suffix == "ies":
                return token[: -len(suffix)] + "y"
            if suffix == "s" and token.endswith("ss"):
                return token
            return token[: -len(suffix)]
    return token


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens with CamelCase split (`KubePodCrashLooping` -> kube pod crash loop)."""
    out: list[str] = []
    for word in _WORD.findall(text):
        for part in _CAMEL.split(word):
            low = part.lower()
            if len(low) < 2 or low in STOPWORDS or low.isdigit():
                continue
            out.append(_stem(low))
    return out


class BM25Index:
    """Okapi BM25 over a fixed list of documents (rebuilt whenever the corpus changes)."""

    def __init__(self, docs: Iterable[tuple[str, str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.ids: list[str] = []
        self._tfs: list[Counter[str]] = []
        self._lens: list[int] = []
        df: Counter[str] = Counter()
        for doc_id, text in docs:
            tokens = tokenize(text)
            tf = Counter(tokens)
            self.ids.append(doc_id)
            self._tfs.append(tf)
            self._lens.append(len(tokens))
            df.update(tf.keys())
        n = len(self.ids)
        self._avg = (sum(self._lens) / n) if n else 0.0
        self._idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every document that shares at least one query term."""
        terms = set(tokenize(query))
        out: dict[str, float] = {}
        if not terms or not self.ids:
            return out
        for i, tf in enumerate(self._tfs):
            score = 0.0
            norm = self.k1 * (1 - self.b + self.b * self._lens[i] / (self._avg or 1.0))
            for term in terms:
                f = tf.get(term)
                if f:
                    score += self._idf[term] * f * (self.k1 + 1) / (f + norm)
            if score > 0:
                out[self.ids[i]] = score
        return out
