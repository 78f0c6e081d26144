"""Scoring helpers shared by the eval suites.

Each function is pure and small so that its published definition can be checked against a hand-made
case in the unit tests. Suites add their own helpers by appending to this module.

Log parsing (Loghub-2.0, Jiang et al. ISSRE'23 / Khan et al. ICSE'22):

* **GA** (grouping accuracy): a line counts as correct when the set of lines the parser put in its
  group is *exactly* the set of lines that share its ground-truth template. GA = correct lines / lines.
* **FGA** (F1 of group accuracy): the same exact-match test applied per *template* instead of per line.
  PGA = correct parsed groups / parsed groups, RGA = correct parsed groups / ground-truth groups,
  FGA = 2·PGA·RGA / (PGA + RGA).

Lines whose ground-truth template is missing (NaN / empty) are left out of both, as Loghub-2.0 does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence

from pydantic import BaseModel


class GroupingScore(BaseModel):
    ga: float
    fga: float
    pga: float
    rga: float
    lines: int
    truth_groups: int
    parsed_groups: int
    correct_groups: int


def _groups(labels: Sequence[Hashable]) -> dict[Hashable, frozenset[int]]:
    out: dict[Hashable, set[int]] = defaultdict(set)
    for i, label in enumerate(labels):
        out[label].add(i)
    return {k: frozenset(v) for k, v in out.items()}


def grouping_scores(truth: Sequence[Hashable | None], parsed: Sequence[Hashable]) -> GroupingScore:
    """GA and FGA of `parsed` group labels against `truth` template labels (same length, same order)."""
    if len(truth) != len(parsed):
        raise ValueError(f"truth has {len(truth)} labels but parsed has {len(parsed)}")
    keep = [i for i, t in enumerate(truth) if t is not None and t == t and t != ""]  # drop None/NaN/""
    t_labels = [truth[i] for i in keep]
    p_labels = [parsed[i] for i in keep]
    truth_sets = set(_groups(t_labels).values())
    parsed_groups = _groups(p_labels)
    correct_lines = 0
    correct_groups = 0
    for members in parsed_groups.values():
        if members in truth_sets:
            correct_groups += 1
            correct_lines += len(members)
    n = len(keep)
    pga = correct_groups / len(parsed_groups) if parsed_groups else 0.0
    rga = correct_groups / len(truth_sets) if truth_sets else 0.0
    fga = 2 * pga * rga / (pga + rga) if pga + rga else 0.0
    return GroupingScore(
        ga=correct_lines / n if n else 0.0, fga=fga, pga=pga, rga=rga, lines=n,
        truth_groups=len(truth_sets), parsed_groups=len(parsed_groups), correct_groups=correct_groups,
    )


def grouping_accuracy(truth: Sequence[Hashable | None], parsed: Sequence[Hashable]) -> float:
    return grouping_scores(truth, parsed).ga


class BinaryScore(BaseModel):
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int


def binary_scores(truth: Sequence[bool], predicted: Sequence[bool]) -> BinaryScore:
    """Precision / recall / F1 of the positive class. Zero (not NaN) when a denominator is empty."""
    if len(truth) != len(predicted):
        raise ValueError(f"truth has {len(truth)} labels but predicted has {len(predicted)}")
    tp = sum(1 for t, p in zip(truth, predicted, strict=True) if t and p)
    fp = sum(1 for t, p in zip(truth, predicted, strict=True) if not t and p)
    fn = sum(1 for t, p in zip(truth, predicted, strict=True) if t and not p)
    tn = len(truth) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return BinaryScore(precision=precision, recall=recall, f1=f1, tp=tp, fp=fp, fn=fn, tn=tn)


# --------------------------------------------------------------------- root-cause ranking (nezha) --
# AS@k (Nezha, FSE'23, "service-level accuracy"): the share of faults whose root-cause service is among
# the top k of the ranking. A fault whose truth is missing from the ranking counts as a miss at every k.


def rank_of(truth: str, ranking: Sequence[str]) -> int | None:
    """1-based position of `truth` in `ranking` (first occurrence), or None when it is absent."""
    for i, item in enumerate(ranking, start=1):
        if item == truth:
            return i
    return None


def accuracy_at_k(ranks: Sequence[int | None], k: int) -> float:
    """AS@k: fraction of cases whose truth is ranked within the top `k` (0.0 for no cases)."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)
