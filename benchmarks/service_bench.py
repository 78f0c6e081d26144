"""Service benchmarks: webhook ingest throughput/latency, and alert-to-plan latency, through `aiops serve`.

    PYTHONPATH=. .venv/bin/python benchmarks/service_bench.py ingest [--seconds 10] [--clients 64]
    PYTHONPATH=. .venv/bin/python benchmarks/service_bench.py plan [--alerts 40]

Not a test: it prints figures. Everything is real and local: `aiops serve` runs as its own process
(uvicorn; uvloop/httptools when installed), Redis is a real `redis-server` started here, and the load
generator is aiohttp with one keep-alive connection per client, on the SAME machine (so client and
server share its cores: on a 2-core box the figures are a lower bound of the server's capacity).

ingest   `aiops serve --no-worker` (nothing consumes, so only intake is measured), for the embedded
         SQLite queue and for Redis, payloads of 1 and 20 alerts; every request is a distinct
         notification (distinct group key and fingerprints), so the queue stores each one. Reports
         alerts/s (alerts accepted / wall time) and request latency p50/p99 (202 responses only;
         anything else is counted as an error).
plan     `aiops serve` with its embedded worker in rule mode, memory off: POST a distinct disk-full
         alert, poll `/api/v1/incidents` every 20 ms until it is `awaiting_approval` (triage,
         diagnosis and a planned, pre-checked remediation). Two loads: one alert at a time, and a
         burst of all of them at once (queueing included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import free_port, start_redis, wait_http  # noqa: E402

# A host-disk alert: with no telemetry configured, rule mode still plans a (catalog) cleanup for approval.
ALERT = json.loads((REPO / "tools" / "replay" / "incidents" / "disk-full.json").read_text())["webhook"]


def notification(n: int, alerts: int) -> bytes:
    body = json.loads(json.dumps(ALERT))
    template = body["alerts"][0]
    body["groupKey"] = f"{{}}:{{bench=\"{n}\"}}"
    body["alerts"] = []
    for i in range(alerts):
        alert = json.loads(json.dumps(template))
        alert["labels"] = {**alert["labels"], "bench": str(n), "replica": str(i)}
        alert["fingerprint"] = f"{n:010x}{i:06x}"
        body["alerts"].append(alert)
    return json.dumps(body).encode()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@contextmanager
def service(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    port = free_port()
    log = open(env["AIOPS_DATA_DIR"] + ".log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc, Path(env["AIOPS_DATA_DIR"] + ".log"))
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OPENAI_", "OLLAMA_", "DATABASE_"))}
    env.update({"PYTHONPATH": str(REPO), "AIOPS_DATA_DIR": str(data_dir), "LLM_MODE": "rules",
                "ENABLE_MEMORY": "false", "DEBUG": "false", **extra})
    return env


# ---------------------------------------------------------------------------------------- ingest --
async def hammer(url: str, clients: int, seconds: float, alerts: int) -> dict[str, Any]:
    import aiohttp

    payloads = [notification(n, alerts) for n in range(2000)]  # pre-built: the client's CPU goes to HTTP
    latencies: list[float] = []
    errors = 0
    counter = 0
    stop_at = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, cid: int) -> None:
        nonlocal errors, counter
        while time.perf_counter() < stop_at:
            counter += 1
            body = payloads[counter % len(payloads)].replace(b'"bench": "', f'"bench": "{cid}-{counter}-'.encode(), 1)
            body = body.replace(b'bench=\\"', f'bench=\\"{cid}-{counter}-'.encode(), 1)
            started = time.perf_counter()
            async with session.post(f"{url}/webhook/alertmanager", data=body,
                                    headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                if resp.status == 202:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up: connections open, first queue writes done
        await asyncio.gather(*(session.post(f"{url}/webhook/alertmanager", data=notification(10**6 + i, 1),
                                            headers={"Content-Type": "application/json"}) for i in range(clients)))
        began = time.perf_counter()
        stop_at = began + seconds
        await asyncio.gather(*(client(session, c) for c in range(clients)))
        wall = time.perf_counter() - began
    return {"requests": len(latencies), "errors": errors, "alerts_per_s": len(latencies) * alerts / wall,
            "requests_per_s": len(latencies) / wall, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000}


def run_ingest(args: argparse.Namespace) -> None:
    print(f"webhook ingest: {args.clients} concurrent clients, {args.seconds:.0f} s per run, "
          f"cpus={os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'queue':<8} {'alerts/req':>10} {'requests':>9} {'errors':>6} {'req/s':>8} {'alerts/s':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7}")
    for queue in args.queues:
        with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp, contextlib_redis(queue) as redis_url:
            extra = {"REDIS_URL": redis_url} if redis_url else {}
            for alerts in args.alerts:
                env = base_env(Path(tmp) / f"var-{alerts}", WEBHOOK_MAX_BYTES=str(4 * 1024 * 1024), **extra)
                with service(env, "--no-worker") as url:
                    r = asyncio.run(hammer(url, args.clients, args.seconds, alerts))
                    depth = json.loads(urllib.request.urlopen(f"{url}/health").read())["components"]["queue"]["detail"]
                print(f"{queue:<8} {alerts:>10} {r['requests']:>9} {r['errors']:>6} {r['requests_per_s']:>8.0f} "
                      f"{r['alerts_per_s']:>9.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f}   ({depth})", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


@contextmanager
def contextlib_redis(queue: str):  # type: ignore[no-untyped-def]
    if queue != "redis":
        yield None
        return
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is not installed")
    with start_redis() as server:
        yield server.url


# ------------------------------------------------------------------------------------------ plan --
async def alert_to_plan(url: str, count: int, burst: bool) -> list[float]:
    import aiohttp

    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def post(n: int) -> None:
            started = time.perf_counter()
            async with session.post(f"{url}/webhook/alertmanager", data=notification(n, 1),
                                    headers={"Content-Type": "application/json"}) as resp:
                body = await resp.json()
            sent[body["incident_id"]] = started

        async def watch(until: int) -> None:
            deadline = time.perf_counter() + 600
            while not (len(sent) >= until and all(i in seen for i in sent)) and time.perf_counter() < deadline:
                async with session.get(f"{url}/api/v1/incidents", params={"status": "awaiting_approval",
                                                                          "limit": "1000"}) as resp:
                    rows = (await resp.json())["incidents"]
                now = time.perf_counter()
                for row in rows:
                    seen.setdefault(row["incident_id"], now)
                await asyncio.sleep(0.02)

        base = int(time.time()) * 1000 + (500 if burst else 0)
        if burst:
            watcher = asyncio.create_task(watch(count))
            await asyncio.gather(*(post(base + n) for n in range(count)))
            await watcher
        else:
            for n in range(count):
                await post(base + n)
                await watch(n + 1)
    return [seen[i] - sent[i] for i in sent if i in seen]


def run_plan(args: argparse.Namespace) -> None:
    print(f"alert-to-plan latency through aiops serve (rule mode, embedded SQLite queue, embedded worker x"
          f"{args.concurrency}, memory off), cpus={os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp:
        env = base_env(Path(tmp) / "var", WORKER_CONCURRENCY=str(args.concurrency))
        with service(env) as url:
            for burst in (False, True):
                lat = asyncio.run(alert_to_plan(url, args.alerts, burst))
                label = f"burst of {args.alerts}" if burst else "one at a time"
                print(f"{label:<16} n={len(lat):<4} p50 {pct(lat, 50) * 1000:7.0f} ms   p99 {pct(lat, 99) * 1000:7.0f} ms"
                      f"   mean {statistics.mean(lat) * 1000:7.0f} ms", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("ingest")
    i.add_argument("--seconds", type=float, default=10.0)
    i.add_argument("--clients", type=int, default=64)
    i.add_argument("--alerts", type=int, nargs="+", default=[1, 20])
    i.add_argument("--queues", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    pl = sub.add_parser("plan")
    pl.add_argument("--alerts", type=int, default=40)
    pl.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    run_ingest(args) if args.what == "ingest" else run_plan(args)


if __name__ == "__main__":
    main()
