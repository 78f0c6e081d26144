"""A tiny synthetic dataset in the Nezha layout, for tests that must not depend on the shared data.

Three services (frontend -> cartservice, frontend -> productcatalogservice), 90 minutes of per-pod
minute metrics with seeded noise, one injected fault (CPU hog in productcatalogservice at 04:00:05,
alert at 04:02:05), and a trap: from 04:04 on, cartservice goes wild. Any reader that sees data after
the alert time ranks cartservice first.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

PODS = {
    "frontend": "frontend-579b9bff58-t2dbm",
    "cartservice": "cartservice-579f59597d-wc2lz",
    "productcatalogservice": "productcatalogservice-668d5f85fb-wckp8",
}
START = datetime(2022, 8, 22, 3, 0, 19, 500000, tzinfo=UTC)
INJECT = datetime(2022, 8, 22, 4, 0, 5, tzinfo=UTC)
ALERT = INJECT + timedelta(minutes=2)
TRAP = datetime(2022, 8, 22, 4, 4, 0, tzinfo=UTC)
MINUTES = 90
COLUMNS = ["CpuUsageRate(%)", "MemoryUsage(Mi)", "PodServerLatencyP90(s)", "PodClientLatencyP90(s)",
           "PodWorkload(Ops)"]


def _go_time(t: datetime, i: int) -> str:
    # the recorded `Time` format: Go's time.String() with a monotonic clock suffix
    return f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond:06d}123 +0000 UTC m=+{i * 60}.000000001"


def write_layout(root: Path, system: str = "onlineboutique", date: str = "2022-08-22") -> Path:
    """Writes `<root>/nezha-rca/{cases.csv, <system>/<date>/metric/...}`; returns the metric dir."""
    metric_dir = root / "nezha-rca" / system / date / "metric"
    metric_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    base = {"frontend": (25.0, 20.0, 0.5, 0.05, 9.0), "cartservice": (6.0, 33.0, 0.005, 0.02, 9.0),
            "productcatalogservice": (30.0, 18.0, 0.01, 0.0, 30.0)}
    for svc, pod in PODS.items():
        rows = [",".join(["Time", "TimeStamp", "PodName", *COLUMNS])]
        for i in range(MINUTES):
            t = START + timedelta(minutes=i)
            vals = [b * (1 + 0.05 * rng.standard_normal()) for b in base[svc]]
            if svc == "productcatalogservice" and t > INJECT:
                vals[0] *= 4  # CPU hog
                vals[2] *= 8  # and it serves slowly
            if svc == "frontend" and t > INJECT:
                vals[2] *= 2  # the victim: its callee is slow
                vals[3] *= 3
            if svc == "cartservice" and t >= TRAP:
                vals = [v * 50 for v in vals]  # future data: must never be seen
            rows.append(",".join([_go_time(t, i), str(int(t.timestamp())), pod, *(f"{v:.6f}" for v in vals)]))
        with gzip.open(metric_dir / f"{pod}_metric.csv.gz", "wt", encoding="utf-8") as fh:
            fh.write("\n".join(rows) + "\n")
    with gzip.open(metric_dir / "dependency.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("Source,Target,Weight\nfrontend,cartservice,1\nfrontend,productcatalogservice,1\n"
                 "loadgenerator,33.33.33.79,1\n")
    edge_rows = ["time,timestamp,frontend_cartservice,frontend_productcatalogservice"]
    for i in range(MINUTES):
        t = START + timedelta(minutes=i)
        edge_rows.append(f"{_go_time(t, i)},{int(t.timestamp())},0.005,{0.04 if t > INJECT else 0.008}")
    with gzip.open(metric_dir / "source_50.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(edge_rows) + "\n")
    (root / "nezha-rca" / "cases.csv").write_text(
        "case_id,system,date,inject_time_utc,inject_pod,root_cause_service,fault_type,"
        "inner_service_root_cause,telemetry_available\n"
        f"ob-test-1,{system},{date},{INJECT:%Y-%m-%d %H:%M:%S},{PODS['productcatalogservice']},"
        "productcatalogservice,cpu_contention,CpuUsageRate(%),metrics\n", encoding="utf-8")
    return metric_dir
