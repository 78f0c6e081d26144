"""Real servers for integration tests, started on free loopback ports and stopped afterwards.

`start_redis()` launches `redis-server` with persistence off in a temporary directory and waits for
PING. The returned `RedisServer` can be killed (SIGKILL, like a crash) and started again on the *same*
port, which is what outage/recovery tests need. When the binary is absent the fixture skips (CI installs
it); the context manager raises `ServerUnavailable` so non-pytest callers get a clear error.

Use from a test module:

    from tests.servers import redis_server  # noqa: F401  (pytest fixture)

    def test_x(redis_server): ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


class ServerUnavailable(RuntimeError):
    """The server binary is not installed."""


# Set by tests/conftest.py to the running test's id when that test is a fast one (not marked
# integration, e2e or faults): such a test must not need a server, and `make test-fast` relies on it.
FAST_TEST: str | None = None


def _not_in_a_fast_test(what: str) -> None:
    if FAST_TEST is not None:
        raise RuntimeError(f"{FAST_TEST} starts {what}, but it is marked as a fast test: move it to "
                           "tests/integration (or tests/e2e), or mark it integration/e2e")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int, timeout: float = 0.2) -> bool:
    """Raw RESP PING, so this helper does not depend on the client library under test."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One `redis-server` process bound to 127.0.0.1:`port`, restartable on the same port."""

    def __init__(self, port: int, workdir: Path, binary: str) -> None:
        self.port = port
        self.workdir = workdir
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: float = 10.0) -> None:
        if self.running:
            return
        _not_in_a_fast_test("redis-server")
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode} on port {self.port}:\n{tail}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port} within {wait}s")

    def stop(self, kill: bool = False) -> None:
        """Stop the server: SIGTERM (graceful) or, with `kill=True`, SIGKILL as in a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def start_redis(port: int | None = None) -> Iterator[RedisServer]:
    """Run a throw-away `redis-server` for the duration of the block."""
    _not_in_a_fast_test("redis-server")
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="aiops-redis-") as tmp:
        last_error: Exception | None = None
        for _attempt in range(3):  # the free port can be taken between probing and binding
            server = RedisServer(port or free_port(), Path(tmp), binary)
            try:
                server.start()
            except RuntimeError as exc:
                last_error = exc
                if port is not None:
                    break
                continue
            try:
                yield server
            finally:
                server.stop()
            return
        raise RuntimeError(f"could not start redis-server: {last_error}")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty redis-server per test (skips when the binary is absent)."""
    try:
        with start_redis() as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(str(exc))


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None,
              log: Path | None = None) -> None:
    """Until `url` answers (any HTTP status), or raise with the process's log tail."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class AiopsProcess:
    """`python -m interfaces.cli <args>` (serve or worker) as a real subprocess, with its log in `log`."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, port: int | None = None) -> None:
        import sys

        _not_in_a_fast_test(f"aiops {args[0] if args else ''}".strip())
        self.args, self.env, self.log, self.port = args, env, log, port
        repo = Path(__file__).resolve().parents[1]
        out = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli", *args], cwd=repo, env=env,
                                     stdout=out, stderr=subprocess.STDOUT)
        out.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> AiopsProcess:
        wait_http(f"{self.url}/health", timeout, self.proc, self.log)
        return self

    def stop(self, kill: bool = False, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return int(self.proc.returncode)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def aiops_serve(env: dict[str, str], log: Path, *extra: str) -> Iterator[AiopsProcess]:
    """A real `aiops serve` on a free loopback port, stopped (SIGTERM) afterwards."""
    port = free_port()
    service = AiopsProcess(["serve", "--host", "127.0.0.1", "--port", str(port), *extra], env, log, port)
    try:
        yield service.wait_ready()
    finally:
        service.stop()


PG_ADMIN = os.environ.get("AIOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def pg_database(prefix: str = "aiops_test") -> Iterator[str]:
    """A throw-away database on the local PostgreSQL server (`AIOPS_TEST_PG`).

    When no server answers there (and `AIOPS_TEST_PG` is not set), one private cluster is started
    for the whole test session instead (initdb + pg_ctl), so a clean machine runs these tests too."""
    _not_in_a_fast_test("a PostgreSQL database")
    psycopg = pytest.importorskip("psycopg")
    admin_url = PG_ADMIN
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except Exception as exc:
        if "AIOPS_TEST_PG" in os.environ:
            raise ServerUnavailable(f"no PostgreSQL at AIOPS_TEST_PG={PG_ADMIN}: {exc}") from exc
        admin_url = _session_postgres().url
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=10)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


_SESSION_PG: PostgresServer | None = None


def _session_postgres() -> PostgresServer:
    global _SESSION_PG
    if _SESSION_PG is None:
        import atexit

        tmp = Path(tempfile.mkdtemp(prefix="aiops-pg-session-"))
        server = PostgresServer(free_port(), tmp / "pg")
        server.init()
        server.start()
        atexit.register(server.stop, "fast")
        atexit.register(shutil.rmtree, tmp, True)
        _SESSION_PG = server
    return _SESSION_PG


def pg_binary(name: str) -> str | None:
    """`initdb` / `pg_ctl` on PATH, else from Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return str(candidates[-1]) if candidates else None


class PrometheusServer:
    """One real `prometheus` process on 127.0.0.1:`port` (no scrape targets unless a config is given),
    stoppable and restartable on the same port with the same TSDB: what outage tests need."""

    def __init__(self, port: int, workdir: Path, binary: str, data: Path | None = None) -> None:
        self.port = port
        self.workdir = workdir
        self.binary = binary
        self.data = data or workdir / "tsdb"
        self.config = workdir / "prometheus.yml"
        if not self.config.exists():
            self.config.write_text("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\nscrape_configs: []\n")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: float = 60.0) -> None:
        if self.running:
            return
        _not_in_a_fast_test("prometheus")
        log = open(self.workdir / "prometheus.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.data}",
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        log.close()
        import urllib.request

        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:  # refused while starting; 503 (HTTPError) until the TSDB is open
                pass
            time.sleep(0.05)
        tail = (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"prometheus did not become ready on port {self.port}:\n{tail}")

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (graceful) or, with `kill=True`, SIGKILL as in a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None


@contextlib.contextmanager
def start_prometheus(workdir: Path | None = None, data: Path | None = None) -> Iterator[PrometheusServer]:
    """Run a throw-away `prometheus` for the duration of the block (ServerUnavailable if not installed)."""
    _not_in_a_fast_test("prometheus")
    binary = shutil.which("prometheus")
    if binary is None:
        raise ServerUnavailable("prometheus is not installed (apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="aiops-prometheus-") as tmp:
        server = PrometheusServer(free_port(), workdir or Path(tmp), binary, data)
        try:
            server.start()
            yield server
        finally:
            server.stop()


class PostgresServer:
    """A private PostgreSQL cluster (initdb + pg_ctl) on 127.0.0.1:`port`, stoppable and restartable on
    the same port: for fault tests that must stop *the* database without touching the shared server.

    Run as the `postgres` user when the tests run as root (initdb refuses root)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.data = workdir / "data"
        self.log = workdir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            import shlex

            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(shlex.quote(a) for a in cmd)]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()[-1500:]}\n{tail}")
        return done

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.workdir.parent.chmod(0o711)  # the temporary directory is root's: let postgres through
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(pg_binary("initdb") or "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        _not_in_a_fast_test("postgres")
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off "
                "-c full_page_writes=off -c max_connections=40")  # fsync off: a stop is a process crash, not a power cut
        self._run(pg_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "30", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash for the clients (connections cut, no shutdown checkpoint)."""
        self._run(pg_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)


@contextlib.contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """A throw-away private PostgreSQL cluster; raises `ServerUnavailable` without initdb/pg_ctl."""
    _not_in_a_fast_test("postgres")
    if pg_binary("initdb") is None or pg_binary("pg_ctl") is None:
        raise ServerUnavailable("initdb/pg_ctl are not installed (PostgreSQL server binaries)")
    with tempfile.TemporaryDirectory(prefix="aiops-pg-") as tmp:
        server = PostgresServer(free_port(), Path(tmp) / "pg")
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop()
