"""Degradation benchmark: per dependency, the time from its failure to the fallback answering.

    PYTHONPATH=. .venv/bin/python benchmarks/degradation_bench.py [--only KEY ...] [--repeat N] [--json]
    PYTHONPATH=. .venv/bin/python benchmarks/degradation_bench.py --smoke     # seconds; CI runs it

Runs the fault-injection scenarios of tests/faults/ (the same ones the fault tests assert on) against
real servers (redis-server, prometheus, postgres) and the wire simulators of tests/sim/, and prints one
row per scenario: the dependency, the fault, what the product did, the breaker's state afterwards and
the median time from the failure to the fallback answering.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import resilience  # noqa: E402
from tests.faults.scenario import Degradation, load_all  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="scenario keys (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="two scenarios once (a dead LLM port, a hanging Proxmox): the benchmark still runs")
    args = ap.parse_args()
    if args.smoke:
        args.only, args.repeat = args.only or ["llm-dead-port", "proxmox-hang"], 1
    os.environ.setdefault("ENABLE_MEMORY", "false")
    scenarios = load_all()
    keys = args.only or sorted(scenarios)
    rows = []
    for key in keys:
        runs: list[Degradation] = []
        for _ in range(args.repeat):
            resilience.reset()
            with tempfile.TemporaryDirectory(prefix=f"aiops-fault-{key}-") as tmp:
                runs.append(scenarios[key](Path(tmp)))
        ms = [r.fallback_ms for r in runs]
        last = runs[-1]
        # the scenarios' other timings (the cost of a call once the breaker is open, recovery, ...)
        extra = {k: round(statistics.median(float(r.details[k]) for r in runs if k in r.details), 1)
                 for k in sorted(last.details) if k.endswith("_ms") and k != "fallback_ms"
                 and isinstance(last.details[k], int | float)}
        rows.append({"scenario": key, "dependency": last.dependency, "fault": last.fault,
                     "behaviour": last.behaviour, "breaker": last.breaker_state,
                     "fallback_ms_median": round(statistics.median(ms), 1),
                     "fallback_ms_max": round(max(ms), 1), "runs": len(ms), "other_ms_median": extra})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'scenario':30} {'breaker':8} {'median ms':>10} {'max ms':>9}  other timings (median ms)")
    for r in rows:
        other = ", ".join(f"{k.removesuffix('_ms')} {v:g}" for k, v in r["other_ms_median"].items())
        print(f"{r['scenario']:30} {r['breaker']:8} {r['fallback_ms_median']:>10} {r['fallback_ms_max']:>9}  {other}")
    print()
    for r in rows:
        print(f"{r['scenario']}: {r['behaviour']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
