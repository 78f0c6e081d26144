"""BM25 tokenizer and index used by the hybrid runbook search."""

from __future__ import annotations

from memory.lexical import BM25Index, tokenize


def test_tokenize_splits_camel_case_and_keeps_discriminating_short_words():
    assert tokenize("KubePodCrashLooping") == ["kube", "pod", "crash", "loop"]
    toks = tokenize("PrometheusOperatorNotReady to any Alertmanager, label limit")
    assert {"not", "any", "label", "limit"} <= set(toks)
    assert "to" not in toks
    assert tokenize("failed failing failures") == ["fail", "fail", "fail"]


def test_bm25_ranks_the_specific_document_first():
    index = BM25Index([
        ("deploy", "Kube Deployment Generation Mismatch deployment generation mismatch roll-back"),
        ("sts", "Kube StatefulSet Generation Mismatch statefulset generation mismatch roll-back"),
        ("disk", "Node Filesystem Space Filling Up disk space"),
    ])
    scores = index.scores("Deployment generation mismatch due to possible roll-back")
    assert max(scores, key=scores.__getitem__) == "deploy"
    assert "disk" not in scores
    assert index.scores("") == {} and len(index) == 3
