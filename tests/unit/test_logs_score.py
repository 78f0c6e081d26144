"""GA / FGA and precision / recall on hand-made cases whose values are worked out by hand."""

from __future__ import annotations

import math

import pytest

from evals.score import binary_scores, grouping_scores


def test_perfect_grouping_with_different_labels() -> None:
    s = grouping_scores(["A", "A", "B", "C"], ["x", "x", "y", "z"])
    assert (s.ga, s.fga, s.correct_groups) == (1.0, 1.0, 3)


def test_one_merged_group() -> None:
    # x = {0,1} equals truth A; y = {2,3,4} merges B and C: 2 of 5 lines, 1 of 2 parsed, 1 of 3 truth groups
    s = grouping_scores(["A", "A", "B", "B", "C"], ["x", "x", "y", "y", "y"])
    assert s.ga == pytest.approx(0.4)
    assert (s.pga, s.rga) == (pytest.approx(0.5), pytest.approx(1 / 3))
    assert s.fga == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))  # = 0.4


def test_one_split_group() -> None:
    # truth A = {0,1,2} split into x={0,1}, y={2}; z={3} equals B: GA 1/4, PGA 1/3, RGA 1/2
    s = grouping_scores(["A", "A", "A", "B"], ["x", "x", "y", "z"])
    assert s.ga == pytest.approx(0.25)
    assert s.fga == pytest.approx(0.4)


def test_lines_without_truth_are_left_out() -> None:
    s = grouping_scores(["A", None, "A", float("nan"), ""], ["x", "q", "x", "r", "s"])
    assert s.lines == 2 and s.ga == 1.0 and s.parsed_groups == 1


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        grouping_scores(["A"], ["x", "y"])


def test_binary_scores() -> None:
    s = binary_scores([True, True, False, False, True], [True, False, True, False, True])
    assert (s.tp, s.fp, s.fn, s.tn) == (2, 1, 1, 1)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    empty = binary_scores([False, False], [False, False])
    assert empty.f1 == 0.0 and not math.isnan(empty.precision)
