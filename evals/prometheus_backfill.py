"""A recorded day backfilled into a real, throw-away Prometheus, so an eval diagnoses through PROMETHEUS_URL.

The recording's series are written as OpenMetrics (`tools.metrics.openmetrics`), turned into TSDB
blocks with `promtool tsdb create-blocks-from openmetrics`, and served by the `prometheus` binary on
a free loopback port with no scrape targets, in a temporary directory removed afterwards. The
process is stopped (SIGTERM, then SIGKILL) when the block exits, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from tools.metrics.openmetrics import to_openmetrics


class BackfillError(RuntimeError):
    """promtool or prometheus is missing, failed, or did not become ready (the message says which)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def backfilled_prometheus(recording: Any, start: datetime, end: datetime, *, ready_seconds: float = 120.0) -> Iterator[str]:
    """Yield the URL of a Prometheus holding every `{service=~".+"}` series of `recording` in [start, end]."""
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    if not promtool or not prometheus:
        raise BackfillError("--prometheus needs the promtool and prometheus binaries (Debian: apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="aiops-eval-prometheus-") as tmp:
        work = Path(tmp)
        om = work / "day.om"
        om.write_text(to_openmetrics(recording.query_range_sync('{service=~".+"}', start, end)), encoding="utf-8")
        data = work / "tsdb"
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise BackfillError(f"promtool backfill failed: {(done.stderr or done.stdout).strip()[-300:]}")
        om.unlink()
        config = work / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with (work / "prometheus.log").open("wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - a resolved binary, fixed arguments
                [prometheus, f"--config.file={config}", f"--storage.tsdb.path={data}",
                 "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=work)
        try:
            deadline = time.monotonic() + ready_seconds
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:  # noqa: S310 - loopback
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (work / "prometheus.log").read_text(errors="replace")[-300:]
                    raise BackfillError(f"prometheus did not become ready on {url}: {tail.strip()}")
                time.sleep(0.1)
            yield url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
