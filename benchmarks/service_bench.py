"""Service benchmarks: webhook ingest, and alert-to-plan latency, through a real `aiops serve`.

    PYTHONPATH=. .venv/bin/python benchmarks/service_bench.py ingest [--seconds 10] [--rate 5000]
                                  [--clients 64] [--alerts 1 20] [--queues sqlite redis] [--intake-processes 0 1]
                                  [--generator auto|c|python]
    PYTHONPATH=. .venv/bin/python benchmarks/service_bench.py plan [--alerts 30] [--concurrency 2]
    PYTHONPATH=. .venv/bin/python benchmarks/service_bench.py {ingest,plan} --smoke     # seconds; CI runs it

Not a test: it prints figures (a smoke run also checks its own bookkeeping and exits 1 if it is off).
Everything is real and local: `aiops serve` runs as its own process (uvicorn; uvloop/httptools), Redis
is a real `redis-server` started here, and the webhook carries a bearer token as in production.

The load generator shares the machine's cores with the server, so it is kept lean: `loadgen.c`, compiled
here with the machine's C compiler (epoll, keep-alive connections, a few µs of CPU per request), or, with
no compiler or `--generator python`, plain HTTP/1.1 over asyncio streams (uvloop, ~300 µs per request).
Both send one request at a time per keep-alive connection, each request a distinct notification (its
own group key and fingerprints, so the queue stores every one), and have the same open/closed semantics.

ingest   `aiops serve --no-worker` (nothing consumes: only intake is measured), per queue, per number
         of extra intake processes (`--intake-processes`: 0 is the service process alone, 1 a second
         process on the same port) and per payload size (alerts per request), two ways:
         - open loop: requests are sent on a fixed schedule at `--rate` alerts/s whatever the server
           does, and latency counts from each request's scheduled time, so a server that falls behind
           shows it (no coordinated omission). This is the goal's question: at 5,000 alerts/s, is p99
           under 50 ms?
         - closed loop (saturation): `--clients` connections each send as soon as the last answer came
           back, for the capacity. Latency here is mostly queueing (p50 ~ clients / throughput).
         Per row: the server's CPU per request (`server us`: the service and its intake processes,
         /proc utime + stime over the run, divided by the requests answered; it does not depend on how
         loaded the machine is), the load generator's (`client us`: it runs on the same cores) and the
         machine's load average at the end of the row (`ldavg`).
         Afterwards the figures are checked against the service's own: `aiops_alerts_received_total`
         and the queue depth must equal what the client saw accepted.
plan     `aiops serve` with its embedded worker in rule mode, memory off. Each alert is a host-disk
         alert on its own host (`bench-<n>`), in its own group: correlation joins alerts about the same
         target or group, so identical targets would measure one plan and many joins. From the POST
         until the incident is `awaiting_approval` (triage, diagnosis, a planned, pre-checked
         remediation), polled every 20 ms; one alert at a time, then a burst of all at once. The
         service's `aiops_alert_to_plan_seconds` histogram must count every one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers import aiops_serve, start_redis  # noqa: E402

# A host-disk alert: with no telemetry configured, rule mode still plans a (catalog) cleanup for approval.
RECORDING = REPO / "tools" / "replay" / "incidents" / "disk-full.json"
WEBHOOK_TOKEN = "bench-webhook-token-0123456789"
READ_TOKEN = "bench-read-token-0123456789"
TARGET_ALERTS_PER_S, TARGET_P99_MS = 5000, 50.0


def template(alerts: int) -> bytes:
    """A notification of `alerts` alerts with `@N@` where each request's own number goes: its group
    key, a label and every fingerprint (so each request is a distinct notification for the queue)."""
    body = json.loads(RECORDING.read_text())["webhook"]
    one = body["alerts"][0]
    body["groupKey"] = '{}:{bench="@N@"}'
    body["alerts"] = [{**one, "labels": {**one["labels"], "bench": "@N@", "replica": str(i)},
                       "fingerprint": f"@N@-{i}"} for i in range(alerts)]
    return json.dumps(body).encode()


def distinct_target(n: int) -> bytes:
    """One alert about host `bench-<n>` alone (own group, instance, host, fingerprint)."""
    body = json.loads(RECORDING.read_text())["webhook"]
    host = f"bench-{n}"
    alert = body["alerts"][0]
    labels = {**alert["labels"], "host": host, "instance": f"{host}:9100"}
    body.update(groupKey=f'{{}}:{{alertname="HostOutOfDiskSpace", instance="{host}:9100"}}',
                groupLabels={"alertname": "HostOutOfDiskSpace", "instance": f"{host}:9100"}, commonLabels=labels)
    body["alerts"] = [{**alert, "labels": labels, "fingerprint": f"{n:016x}"}]
    return json.dumps(body).encode()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "OPENAI_", "OLLAMA_", "DATABASE_"))}
    env.update({"PYTHONPATH": str(REPO), "AIOPS_DATA_DIR": str(data_dir), "LLM_MODE": "rules",
                "ENABLE_MEMORY": "false", "DEBUG": "false", "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
                "AIOPS_API_TOKEN": READ_TOKEN, **extra})
    return env


def get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return bytes(resp.read())


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample (or the sum over its labels) in a Prometheus exposition."""
    values = [float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)]
    return sum(values)


# --------------------------------------------------------------------------------- the client --
class Connection:
    """One keep-alive HTTP/1.1 connection: write a request, read status line, headers and body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(headers[9:12])
        found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", headers)
        await self.reader.readexactly(int(found.group(1)) if found else 0)
        return status

    def close(self) -> None:
        self.writer.close()


def request_head(host: str, port: int) -> bytes:
    return (f"POST /webhook/alertmanager HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {WEBHOOK_TOKEN}\r\nContent-Length: ").encode()


@dataclass
class Result:
    mode: str
    alerts: int  # per request
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    client_cpu: float = 0.0  # the load generator's own CPU seconds: what it took from the shared cores
    server_cpu: float = 0.0  # the service's processes' CPU seconds over the run (/proc utime + stime)
    load: float = 0.0  # the machine's 1-minute load average at the end of the run

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def alerts_per_s(self) -> float:
        return self.requests * self.alerts / self.wall if self.wall else 0.0

    def row(self, where: str) -> str:
        return (f"{where} {self.alerts:>6} {self.mode:<22} {self.requests:>8} {self.errors:>6} "
                f"{self.requests / self.wall:>8.0f} {self.alerts_per_s:>9.0f} {pct(self.latencies, 50) * 1000:>7.1f} "
                f"{pct(self.latencies, 99) * 1000:>7.1f} {max(self.latencies, default=0) * 1000:>7.1f} "
                f"{self.server_cpu / max(1, self.requests) * 1e6:>9.0f} "
                f"{self.client_cpu / max(1, self.requests) * 1e6:>9.0f} {self.load:>5.2f}")


async def _connections(url: str, count: int) -> list[Connection]:
    host, port = url.removeprefix("http://").split(":")
    return [await Connection.open(host, int(port)) for _ in range(count)]


async def closed_loop(url: str, alerts: int, clients: int, seconds: float, first: int) -> Result:
    """`clients` connections, each sending its next request when the last one was answered."""
    host, port = url.removeprefix("http://").split(":")
    head, body = request_head(host, int(port)), template(alerts)
    conns = await _connections(url, clients)
    result = Result(f"closed, {clients} clients", alerts)
    counter = iter(range(first, first + 10**9))
    stop_at = time.perf_counter() + seconds

    async def client(conn: Connection) -> None:
        while time.perf_counter() < stop_at:
            payload = body.replace(b"@N@", str(next(counter)).encode())
            started = time.perf_counter()
            status = await conn.post(head, payload)
            if status == 202:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client(c) for c in conns))
    result.wall, result.client_cpu = time.perf_counter() - began, time.process_time() - cpu
    for c in conns:
        c.close()
    return result


async def open_loop(url: str, alerts: int, rate: float, seconds: float, first: int, connections: int = 64) -> Result:
    """Requests on a fixed schedule at `rate` alerts/s; latency from each request's scheduled time."""
    host, port = url.removeprefix("http://").split(":")
    head, body = request_head(host, int(port)), template(alerts)
    per_s = rate / alerts
    total = max(1, int(per_s * seconds))
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for c in await _connections(url, connections):
        idle.put_nowait(c)
    result = Result(f"open, {rate:,.0f} alerts/s", alerts)
    start = time.perf_counter() + 0.05

    async def one(n: int, due: float) -> None:
        conn = await idle.get()  # all busy: the wait counts, as it would for Alertmanager
        try:
            status = await conn.post(head, body.replace(b"@N@", str(first + n).encode()))
        finally:
            idle.put_nowait(conn)
        if status == 202:
            result.latencies.append(time.perf_counter() - due)
        else:
            result.errors += 1

    tasks: set[asyncio.Task[None]] = set()
    n, cpu = 0, time.process_time()
    while n < total:
        now = time.perf_counter()
        due = start + n / per_s
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while n < total and (due := start + n / per_s) <= now:
            task = asyncio.create_task(one(n, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
    await asyncio.gather(*tasks)
    result.wall, result.client_cpu = time.perf_counter() - start, time.process_time() - cpu
    while not idle.empty():
        idle.get_nowait().close()
    return result


# ------------------------------------------------------------------- the C load generator --
LOADGEN_C = Path(__file__).with_name("loadgen.c")


def compiled_loadgen(build_dir: Path) -> Path | None:
    """`loadgen.c` compiled with the machine's C compiler, or None when there is none (or it fails):
    then the Python generator above runs instead. The C one costs a few µs of CPU per request where the
    Python one costs ~300 µs, which on the server's own two cores is the difference between measuring
    the server and measuring the generator."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    exe = build_dir / "loadgen"
    done = subprocess.run([cc, "-O2", "-o", str(exe), str(LOADGEN_C)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  (cc failed on {LOADGEN_C.name}, the Python load generator runs instead: "
              f"{done.stderr.strip()[:200]})")
        return None
    return exe


def c_load(exe: Path, url: str, alerts: int, *, rate: float, clients: int, seconds: float, first: int,
           connections: int = 64) -> Result:
    """`open_loop` (rate > 0: `rate` alerts/s on `connections` connections) or `closed_loop` (rate 0:
    `clients` connections), the same semantics, by the compiled generator."""
    host, port = url.removeprefix("http://").split(":")
    with tempfile.TemporaryDirectory(prefix="aiops-loadgen-") as tmp:
        (Path(tmp) / "head").write_bytes(request_head(host, int(port)))
        (Path(tmp) / "body").write_bytes(template(alerts))
        mode, per_s, conns = ("open", rate / alerts, connections) if rate else ("closed", 0.0, clients)
        done = subprocess.run([str(exe), mode, host, port, f"{tmp}/head", f"{tmp}/body", str(first),
                               str(per_s), str(seconds), str(conns)], capture_output=True, text=True,
                              timeout=seconds + 120)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen exited {done.returncode}: {done.stderr.strip()[:300]}")
    lines = done.stdout.split("\n")
    count, errors, wall, cpu = lines[0].split()
    result = Result(f"open, {rate:,.0f} alerts/s" if rate else f"closed, {clients} clients", alerts,
                    latencies=[float(x) for x in lines[1:1 + int(count)]], errors=int(errors), wall=float(wall),
                    client_cpu=float(cpu))
    if len(result.latencies) != int(count):
        raise RuntimeError(f"loadgen said {count} answers and printed {len(result.latencies)} latencies")
    return result


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# ------------------------------------------------------------------------------------- ingest --
@contextmanager
def queue_env(queue: str) -> Iterator[dict[str, str]]:
    if queue == "redis":
        with start_redis() as server:
            yield {"REDIS_URL": server.url}
    else:
        yield {}


def load(exe: Path | None, url: str, alerts: int, rate: float, clients: int, seconds: float, first: int) -> Result:
    """Open loop at `rate` alerts/s, or (rate 0) closed loop with `clients` connections: by the C load
    generator when it was compiled, else by the Python one."""
    if exe is not None:
        return c_load(exe, url, alerts, rate=rate, clients=clients, seconds=seconds, first=first)
    if rate:
        return run_async(open_loop(url, alerts, rate, seconds, first))  # type: ignore[no-any-return]
    return run_async(closed_loop(url, alerts, clients, seconds, first))  # type: ignore[no-any-return]


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and every process under it: the service and its intake
    processes. Divided by the requests served in between, that is the server's CPU per request, a figure
    that does not depend on how loaded the machine is."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid ... utime stime
        children.setdefault(int(fields[1]), []).append(int(entry))
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


def run_ingest(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="aiops-loadgen-build-") as build:
        exe = compiled_loadgen(Path(build)) if args.generator in ("auto", "c") else None
        if args.generator == "c" and exe is None:
            print("--generator c: no C compiler (cc, gcc or clang) or loadgen.c does not compile")
            return 1
        return _run_ingest(args, exe)


def _run_ingest(args: argparse.Namespace, exe: Path | None) -> int:
    print(f"webhook ingest through aiops serve --no-worker: cpus={os.cpu_count()}, load average before "
          f"{os.getloadavg()[0]:.2f}; target >= {TARGET_ALERTS_PER_S:,} alerts/s at p99 < {TARGET_P99_MS:.0f} ms; "
          f"load generator: {'C (benchmarks/loadgen.c)' if exe else 'Python (asyncio)'}")
    print(f"{'queue':<7} {'procs':>5} {'alerts':>6} {'load':<22} {'requests':>8} {'errors':>6} {'req/s':>8} "
          f"{'alerts/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'server us':>9} {'client us':>9} {'ldavg':>5}")

    def measure(svc: Any, run: Callable[[], Result]) -> Result:
        before = process_tree_cpu(svc.proc.pid)
        result = run()
        result.server_cpu = process_tree_cpu(svc.proc.pid) - before
        result.load = os.getloadavg()[0]
        return result

    def settle(svc: Any, timeout: float = 30.0) -> None:
        """Until the service's processes are idle (an intake process is still importing when /health first
        answers), so that their start-up is neither measured nor competing with the run."""
        deadline, last = time.monotonic() + timeout, process_tree_cpu(svc.proc.pid)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = process_tree_cpu(svc.proc.pid)
            if now - last < 0.05:  # under 10 % of a core
                return
            last = now

    failures = 0
    for queue, procs in [(q, n) for q in args.queues for n in args.intake_processes]:
        with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp, queue_env(queue) as extra:
            for alerts in args.alerts:
                data = Path(tmp) / f"var-{alerts}"
                env = base_env(data, WEBHOOK_MAX_BYTES=str(4 * 1024 * 1024), **extra)
                with aiops_serve(env, Path(f"{data}.log"), "--no-worker", "--intake-processes", str(procs)) as svc:
                    settle(svc)
                    warm = run_async(closed_loop(svc.url, 1, 4, 0.5, first=10**8))  # connections, first commits
                    settle(svc)
                    results = []
                    if args.rate:
                        results.append(measure(svc, partial(load, exe, svc.url, alerts, args.rate, 0, args.seconds,
                                                            2 * 10**8)))
                    if args.clients:
                        results.append(measure(svc, partial(load, exe, svc.url, alerts, 0.0, args.clients,
                                                            args.seconds, 3 * 10**8)))
                    sent = sum(r.requests * r.alerts for r in [warm, *results])
                    stored = json.loads(get(f"{svc.url}/health"))["components"]["queue"]["detail"]
                    received = metric(get(f"{svc.url}/metrics").decode(), "aiops_alerts_received_total")
                for r in results:
                    met = r.mode.startswith("open") and r.errors == 0 and r.alerts_per_s >= 0.97 * args.rate and \
                        pct(r.latencies, 99) * 1000 < TARGET_P99_MS
                    print(r.row(f"{queue:<7} {1 + procs:>5}") + ("   target met" if met and args.rate >= TARGET_ALERTS_PER_S
                                                                  else ""), flush=True)
                    failures += r.errors
                if received != sent:
                    print(f"  MISMATCH: the service counted {received:.0f} alerts received, the client {sent}")
                    failures += 1
                print(f"  service: {received:.0f} alerts received; queue: {stored}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 1 if failures else 0


# --------------------------------------------------------------------------------------- plan --
async def alert_to_plan(url: str, numbers: list[int], burst: bool) -> tuple[list[float], list[str]]:
    """Seconds from each POST until its incident awaits approval; and the incidents that never did."""
    import httpx

    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=30) as http:

        async def post(n: int) -> None:
            started = time.perf_counter()
            resp = await http.post("/webhook/alertmanager", content=distinct_target(n), headers=hook)
            resp.raise_for_status()
            sent[resp.json()["incident_id"]] = started

        async def watch(until: int, deadline: float) -> None:
            while time.perf_counter() < deadline and not (len(sent) >= until and all(i in seen for i in sent)):
                rows = (await http.get("/api/v1/incidents", params={"limit": "1000"})).json()["incidents"]
                now = time.perf_counter()
                for row in rows:
                    if row["status"] == "awaiting_approval":
                        seen.setdefault(row["incident_id"], now)
                await asyncio.sleep(0.02)

        deadline = time.perf_counter() + 120 + 10 * len(numbers)
        if burst:
            watcher = asyncio.create_task(watch(len(numbers), deadline))
            await asyncio.gather(*(post(n) for n in numbers))
            await watcher
        else:
            for i, n in enumerate(numbers):
                await post(n)
                await watch(i + 1, deadline)
    return [seen[i] - sent[i] for i in sent if i in seen], [i for i in sent if i not in seen]


def run_plan(args: argparse.Namespace) -> int:
    print(f"alert-to-plan latency through aiops serve (rule mode, embedded SQLite queue, embedded worker x"
          f"{args.concurrency}, memory off, every alert on its own host): cpus={os.cpu_count()}, "
          f"load average before {os.getloadavg()[0]:.2f}")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp:
        env = base_env(Path(tmp) / "var", WORKER_CONCURRENCY=str(args.concurrency))
        with aiops_serve(env, Path(tmp) / "serve.log") as svc:
            base = int(time.time())
            for burst in (False, True):
                numbers = [base * 1000 + (500 if burst else 0) + n for n in range(args.alerts)]
                lat, missing = run_async(alert_to_plan(svc.url, numbers, burst))
                label = f"burst of {args.alerts}" if burst else "one at a time"
                print(f"{label:<16} n={len(lat):<4} p50 {pct(lat, 50) * 1000:7.0f} ms   p99 {pct(lat, 99) * 1000:7.0f} ms"
                      f"   mean {statistics.mean(lat) * 1000 if lat else float('nan'):7.0f} ms", flush=True)
                if missing:
                    print(f"  {len(missing)} incident(s) never reached awaiting_approval: {missing[:5]}")
                    failures += len(missing)
            exposition = get(f"{svc.url}/metrics").decode()
            counted = metric(exposition, "aiops_alert_to_plan_seconds_count")
            print(f"service: aiops_alert_to_plan_seconds counted {counted:.0f} plans (mean "
                  f"{metric(exposition, 'aiops_alert_to_plan_seconds_sum') / counted * 1000 if counted else 0:.0f} ms"
                  f" from enqueue to plan)")
            if counted != 2 * args.alerts:
                print(f"  MISMATCH: expected {2 * args.alerts} plans in the histogram")
                failures += 1
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    i = sub.add_parser("ingest")
    i.add_argument("--seconds", type=float, default=10.0)
    i.add_argument("--rate", type=float, default=TARGET_ALERTS_PER_S, help="open loop: alerts/s offered (0: skip)")
    i.add_argument("--clients", type=int, default=64, help="closed loop: connections (0: skip)")
    i.add_argument("--alerts", type=int, nargs="+", default=[1, 20], help="alerts per request")
    i.add_argument("--queues", nargs="+", default=["sqlite", "redis"], choices=["sqlite", "redis"])
    i.add_argument("--intake-processes", type=int, nargs="+", default=[0, 1],
                   help="extra processes accepting webhooks (aiops serve --intake-processes)")
    i.add_argument("--generator", choices=["auto", "c", "python"], default="auto",
                   help="load generator: benchmarks/loadgen.c compiled here (auto: when a C compiler exists), "
                        "or the Python one")
    pl = sub.add_parser("plan")
    pl.add_argument("--alerts", type=int, default=30)
    pl.add_argument("--concurrency", type=int, default=2)
    for s in (i, pl):
        s.add_argument("--smoke", action="store_true", help="a few seconds, for CI: the benchmark still runs")
    args = p.parse_args(argv)
    if args.smoke and args.what == "ingest":
        args.seconds, args.rate, args.clients, args.queues, args.intake_processes = 1.0, 200.0, 4, ["sqlite"], [1]
    elif args.smoke:
        args.alerts = 2
    runs: dict[str, Callable[[argparse.Namespace], int]] = {"ingest": run_ingest, "plan": run_plan}
    return runs[args.what](args)


if __name__ == "__main__":
    raise SystemExit(main())
