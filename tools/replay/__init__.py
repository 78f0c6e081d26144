"""Replay toolset: recorded incidents served as if they were live backends.

- `recording.py`  the recorded-incident format (`RecordedIncident`: webhook, series, log lines, hosts)
                  and the in-memory metric/log sources a replay reads, clocked at the alert
- `standins.py`   the recording's stand-in hosts (sandbox files + an Ansible inventory)
- `incidents/`    the bundled demo recordings (`aiops demo`) and their generator

Used by the product (`aiops demo`, `aiops analyze --replay`) and by the tests and evals; it lives in
`tools/` because the product must never import `evals`.
"""
