"""Fault injection against the real servers: one dependency fails, the product must degrade, not die.

Layout: each `scenarios_<group>.py` holds scenario functions registered with `@degradation(...)`; a
scenario breaks one dependency for real (stops redis-server or prometheus, points a client at a dead
port, makes a wire simulator answer 500 or hang), runs the product path that needs it, and returns a
`Degradation` with what happened and the time from the failure to the fallback answering. The
`test_<group>.py` files assert on those results (behaviour, never timings); the degradation benchmark
(`benchmarks/degradation_bench.py`) runs the same scenarios and prints the times. docs/resilience.md
has the table.
"""
