"""`BalancedAccept`: the processes of one `aiops serve` share one listening socket, and a burst of
keep-alive connections ends up spread evenly over them, not with whichever process woke first."""

from __future__ import annotations

import asyncio
import socket
from multiprocessing import get_context
from typing import Any

from interfaces.api.intake_processes import BalancedAccept


class Held(asyncio.Protocol):
    """A connection kept open, as Alertmanager keeps its connections alive."""


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    return sock


async def burst(port: int, count: int, settle: float = 0.3) -> list[socket.socket]:
    """`count` connections opened at once, then the loop runs `settle` seconds for the acceptors."""
    clients = []
    for _ in range(count):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(("127.0.0.1", port))  # completes in the kernel: the server accepts later
        clients.append(c)
    await asyncio.sleep(settle)
    return clients


def test_a_burst_of_connections_is_split_evenly() -> None:
    """The second process is busy when the burst arrives (it starts accepting 50 ms later): the first
    does not take them all meanwhile, and the split ends even."""

    async def run() -> list[int]:
        sock = listener()
        connections = get_context("spawn").RawArray("i", 2)
        # two "processes": the same listening socket under two descriptors, as after a spawn
        first = BalancedAccept(sock, connections, 0, Held)
        clients = await burst(sock.getsockname()[1], 64, settle=0.05)
        second = BalancedAccept(sock.dup(), connections, 1, Held)
        await asyncio.sleep(0.3)
        counts = list(connections)
        for acceptor in (first, second):
            acceptor.close()
        for c in clients:
            c.close()
        return counts

    counts = asyncio.run(run())
    assert sum(counts) == 64
    assert abs(counts[0] - counts[1]) <= 2, counts


def test_a_process_that_does_not_accept_does_not_hold_connections_back() -> None:
    """Process 1 holds fewer connections but is stopped (nothing accepts for it): process 0 steps back
    for `DEFER` at each connection, then takes it."""

    async def run() -> tuple[list[int], float]:
        sock = listener()
        connections = get_context("spawn").RawArray("i", 2)
        only = BalancedAccept(sock, connections, 0, Held)
        loop = asyncio.get_running_loop()
        started = loop.time()
        clients = await burst(sock.getsockname()[1], 10)
        counts, took = list(connections), loop.time() - started
        only.close()
        for c in clients:
            c.close()
        return counts, took

    counts, took = asyncio.run(run())
    assert counts == [10, 0]
    assert took < 1.0


def test_closed_connections_are_counted_out() -> None:
    async def run() -> list[int]:
        sock = listener()
        connections = get_context("spawn").RawArray("i", 1)

        class Counted(asyncio.Protocol):
            def connection_lost(self, exc: Exception | None) -> None:
                accept.closed_one()

        accept = BalancedAccept(sock, connections, 0, Counted)
        clients = await burst(sock.getsockname()[1], 5)
        for c in clients[:3]:
            c.close()
        await asyncio.sleep(0.2)
        counts = list(connections)
        accept.close()
        for c in clients[3:]:
            c.close()
        return counts

    assert asyncio.run(run()) == [2]


def _affinity_after_pinning(slot: int, out: Any) -> None:
    import os

    from interfaces.api.intake_processes import pin_to_one_cpu

    cpu = pin_to_one_cpu(slot)
    out.put((cpu, sorted(os.sched_getaffinity(0))))


def test_an_intake_process_is_pinned_to_one_cpu_of_its_own() -> None:
    import os

    cpus = sorted(os.sched_getaffinity(0))
    ctx = get_context("spawn")
    for slot in (1, 2):
        out = ctx.Queue()
        child = ctx.Process(target=_affinity_after_pinning, args=(slot, out))
        child.start()
        cpu, affinity = out.get(timeout=60)
        child.join(60)
        if len(cpus) < 2:  # nothing to choose from: left as it was
            assert cpu is None and affinity == cpus
        else:
            assert cpu == cpus[slot % len(cpus)] and affinity == [cpu]
    assert sorted(os.sched_getaffinity(0)) == cpus  # the caller (the service) is not pinned
