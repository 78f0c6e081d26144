"""The published metric-based RCA methods on the same Nezha cases, windows and scorer as aiops.

RCAEval (Pham et al., WWW'25 companion; PyPI `rcaeval` 1.8.1, the optional `[baselines]` extra) is
run unchanged: BARO (FSE'24), N-Sigma, and CIRCA (KDD'22) when causal-learn imports. RCD is left
out: it calls `local_skeleton_discovery`, which only its authors' patched causal-learn has.
Each method gets, per case, what aiops ranks on less the call-edge latencies: the recorded metrics of
every pod and the entry service's own view (`front_service`: its success rate and latency) from the
start of aiops' baseline to the alert time (nothing later), as one frame with a
`time` column and one `<service>_<metric>` column per series, and, as its "injection time", the
start of aiops' detection window (`alert time - DETECT_WINDOW`). That is the alert-derived split,
not the true injection time: no method here reads the ground truth. A method's metric ranking is
turned into a service ranking by first appearance, and scored with the same AS@k as aiops.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from evals.score import accuracy_at_k, rank_of

METHODS = ("baro", "nsigma", "circa")
KS = (1, 3, 5)
CASE_SECONDS = 120.0  # a method slower than this on one case is stopped for the rest of the run


def available_methods() -> dict[str, Callable[..., dict[str, Any]]]:
    """The RCAEval methods that import here (name -> function); empty without the extra."""
    out: dict[str, Callable[..., dict[str, Any]]] = {}
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import RCAEval.e2e  # noqa: F401  - the package imports its methods eagerly
    except Exception:  # noqa: BLE001 - not installed, or a dependency missing: no baselines
        return out
    for name, module, func in (("baro", "RCAEval.e2e.baro", "baro"), ("nsigma", "RCAEval.e2e", "nsigma"),
                               ("circa", "RCAEval.e2e.circa", "circa")):
        try:
            import importlib

            out[name] = getattr(importlib.import_module(module), func)
        except Exception:  # noqa: BLE001,S112 - this method's dependencies are missing
            continue
    return out


def day_frame(recording: Any, start: datetime, end: datetime) -> Any:
    """Every pod metric and the entry service's view in [start, end] as one wide frame, indexed by minute:
    `<service>_<metric>` columns."""
    import pandas as pd

    cols: dict[str, pd.Series] = {}
    series = recording.query_range_sync('{pod=~".+"}', start, end)
    series += recording.query_range_sync('{scope="entry"}', start, end)
    for s in series:
        name = f"{s.labels.get('service', 'unknown')}_{s.metric}"
        k, i = name, 2
        while k in cols:  # a second pod of the same service
            k, i = f"{name}{i}", i + 1
        idx = pd.to_datetime([t for t, _ in s.points], utc=True).floor("min")
        cols[k] = pd.Series([v for _, v in s.points], index=idx).groupby(level=0).mean()
    return pd.DataFrame(cols).sort_index()


def case_frame(day: Any, baseline_start: datetime, end: datetime) -> Any:
    """RCAEval's input for one case: `time` (epoch seconds) + the columns, [baseline_start, end] only."""
    import pandas as pd

    frame = day.loc[(day.index >= pd.Timestamp(baseline_start)) & (day.index <= pd.Timestamp(end))]
    frame = frame.interpolate(limit_direction="both").fillna(0.0)
    frame.insert(0, "time", [t.timestamp() for t in frame.index])
    return frame.reset_index(drop=True)


def service_ranking(ranks: list[str]) -> list[str]:
    """`cartservice_cpu_usage` -> cartservice, in the order of first appearance."""
    out: list[str] = []
    for r in ranks:
        svc = str(r).split("_", 1)[0]
        if svc not in out:
            out.append(svc)
    return out


def _scores(ranks: list[int | None]) -> dict[str, Any]:
    return {"cases": len(ranks), **{f"as@{k}": round(accuracy_at_k(ranks, k), 4) for k in KS}}


def run_baselines(cases: list[Any], recording: Any, windows: dict[str, tuple[datetime, datetime, datetime]],
                  methods: dict[str, Callable[..., dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per method: AS@k overall and per fault type, seconds. `windows[case_id]` is aiops'
    (baseline start, window start, end) for that case."""
    rows = []
    day = day_frame(recording, min(w[0] for w in windows.values()), max(w[2] for w in windows.values()))
    for name, fn in methods.items():
        ranks: list[int | None] = []
        by_fault: dict[str, list[int | None]] = defaultdict(list)
        started = time.perf_counter()
        stopped = ""
        failures, error = 0, ""
        for case in cases:
            baseline_start, start, end = windows[case.case_id]
            frame = case_frame(day, baseline_start, end)
            t0 = time.perf_counter()
            ranking: list[str] = []
            if not stopped:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    try:
                        out = fn(frame, inject_time=start.timestamp(), dataset="online-boutique")
                        ranking = service_ranking(list(out.get("ranks") or []))
                    except Exception as exc:  # noqa: BLE001 - a method that fails on a case ranks nothing
                        failures += 1
                        error = error or f"{type(exc).__name__}: {exc}"[:120]
                if time.perf_counter() - t0 > CASE_SECONDS:
                    stopped = f"stopped after {CASE_SECONDS:.0f} s on one case"
            rank = rank_of(case.root_cause_service, ranking)  # the scorer: the only reader of the truth
            ranks.append(rank)
            by_fault[case.fault_type].append(rank)
        rows.append({"approach": name, **_scores(ranks),
                     "by_fault_type": {k: _scores(v) for k, v in sorted(by_fault.items())},
                     "seconds": round(time.perf_counter() - started, 2),
                     "note": "; ".join(x for x in (stopped, f"failed on {failures} cases ({error})" if failures else "")
                                       if x)})
    return rows
