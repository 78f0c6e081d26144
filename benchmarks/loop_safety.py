"""Loop-safety benchmark: the same fault recurs 10 times in an hour; count what ran without a human.

    PYTHONPATH=. .venv/bin/python benchmarks/loop_safety.py [--times 10]
    PYTHONPATH=. .venv/bin/python benchmarks/loop_safety.py --smoke    # default policy, 2 recurrences; CI runs it

The scenario is the loop-safety test's (tests/integration/test_self_healing_loop.py): the bundled
`disk-full` recording through the real graph in rule mode, the real `cleanup_rotated_logs` playbook
run by Ansible against the recording's local stand-in host, one recurrence every 6 minutes on the
guards' clock, each escalated recurrence resolved by its alert before the next. Run for the default
policy, with the flap guard off (FLAP_WINDOW_SECONDS=0, so the rate limit is what stops it), and with
the run-time kill switch off. Prints, per variant, the automatic actions, the escalations and the
guard that refused each escalated recurrence. Exits 1 when a variant runs more automatic actions than
its policy allows (default: 1 per flap window; flap guard off: 3 per target and hour; kill switch: 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.self_healing import set_self_healing  # noqa: E402
from core.settings import load_settings  # noqa: E402
from tests.conftest import recording  # noqa: E402
from tests.integration.test_self_healing_loop import _recur  # noqa: E402

ALLOWED = {"default policy": 1, "flap guard off": 3, "kill switch off": 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--times", type=int, default=10)
    ap.add_argument("--smoke", action="store_true",
                    help="the default policy, 2 recurrences (the flap guard's A then H): the benchmark still runs")
    args = ap.parse_args()
    variants = ["default policy"] if args.smoke else list(ALLOWED)
    if args.smoke:
        args.times = 2
    results = {}
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix="aiops-loop-") as tmp:
            settings = load_settings(AIOPS_DATA_DIR=Path(tmp), ENABLE_MEMORY=False, VERIFY_SETTLE_SECONDS=0,
                                     LLM_MODE="rules",
                                     FLAP_WINDOW_SECONDS=0 if variant == "flap guard off" else 3600)
            if variant == "kill switch off":
                set_self_healing(settings, False, "benchmark")
            started = time.perf_counter()
            runs = asyncio.run(_recur(settings, recording("disk-full"), args.times))
            results[variant] = {
                "recurrences": len(runs), "automatic_actions": sum(r["auto_actions"] for r in runs),
                "sequence": "".join("A" if r["auto_actions"] else "H" for r in runs),
                "escalated_by": dict(Counter(r["rule"] for r in runs if not r["auto_actions"])),
                "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(results, indent=1))
    over = [v for v, r in results.items() if r["automatic_actions"] > min(ALLOWED[v], args.times)]
    if args.smoke and results["default policy"]["sequence"] != "AH":  # fixed once, then the flap guard
        over.append("default policy (expected AH)")
    if over:
        print(f"more automatic actions than the policy allows: {over}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
