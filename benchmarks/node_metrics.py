"""Node API metrics overhead: NodeClient calls against hstssim with and without the recorder.

Starts a redis-server and one `hstssim` node in their own processes, then times rounds of
node calls (GET /ping and one page of GET /ops/transfers, alternately) through three
NodeClients taking turns: two without an observer (the second shows the noise between two
identical clients) and one with the NodeCallRecorder the workers use, flushing to that Redis
every second. Also times the recorder alone (one call's bookkeeping) and one flush. Prints
one table.

    python benchmarks/node_metrics.py                 # the figures in docs/metrics.md
    python benchmarks/node_metrics.py --calls 200 --rounds 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import BIN, free_port, process, redis_binary  # noqa: E402
from orchestrator.domain.nodes import NodeConnection  # noqa: E402
from orchestrator.nodeapi.client import NodeClient  # noqa: E402
from orchestrator.nodeapi.observe import NodeCall  # noqa: E402
from orchestrator.services.nodes.calls import NodeCallRecorder  # noqa: E402

OUTCOMES = 40


def start(stack: ExitStack, work: Path) -> tuple[dict[str, str], str]:
    """A redis-server and one hstssim node; their URL and the node's JSON line."""
    port = free_port()
    stack.enter_context(
        process(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(work)],
            work / "redis.log",
        )
    )  # fmt: skip
    log = work / "hstssim.log"
    stack.enter_context(
        process([str(BIN / "hstssim"), "--nodes", "1", "--json", "--root", str(work)], log)
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [x for x in log.read_text().splitlines() if x.startswith("{")]
        if lines:
            return json.loads(lines[0]), f"redis://127.0.0.1:{port}/0"
        time.sleep(0.2)
    raise SystemExit(f"hstssim did not start; see {log}")


def connection(node: dict[str, str]) -> NodeConnection:
    """The node's NodeConnection (its node user)."""
    return NodeConnection.model_validate(
        {
            "name": node["name"],
            "base_url": node["api_url"],
            "auth": {"username": node["node_user"], "password": node["node_password"]},
        }
    )


def timed_calls(client: NodeClient, calls: int) -> float:
    """Seconds per call over ``calls`` calls (ping and a feed page, alternately)."""
    started = time.perf_counter()
    for i in range(calls):
        if i % 2:
            client.ping()
        else:
            next(client.iter_transfer_pages(None, count=10, max_pages=1))
    return (time.perf_counter() - started) / calls


def spread(seconds: list[float]) -> str:
    """The fastest and slowest round, in milliseconds."""
    return f"{min(seconds) * 1e3:.3f}-{max(seconds) * 1e3:.3f}"


def ratio(rounds: dict[str, list[float]], name: str) -> str:
    """The median over rounds of one kind's time over the plain client's in the same round."""
    pairs = zip(rounds[name], rounds["plain"], strict=True)
    return f"{statistics.median(a / b for a, b in pairs):.3f}"


def main() -> None:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500, help="node calls per round")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of each kind")
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        node, url = start(stack, Path(tmp))
        recorder = NodeCallRecorder(lambda: redis.Redis.from_url(url), flush_seconds=1.0)
        clients = {
            "plain": NodeClient.connect(connection(node)),
            "control": NodeClient.connect(connection(node)),  # no observer either: the noise
            "recorder": NodeClient.connect(connection(node), observer=recorder),
        }
        for client in clients.values():
            timed_calls(client, 200)  # warm every pool and the node
        rounds: dict[str, list[float]] = {name: [] for name in clients}
        order = list(clients)
        for i in range(args.rounds):  # the order reverses each round: none always runs first
            for name in order if i % 2 == 0 else order[::-1]:
                rounds[name].append(timed_calls(clients[name], args.calls))
        recorder.close()
        for client in clients.values():
            client.close()

        bare = NodeCallRecorder(lambda: redis.Redis.from_url(url), flush_seconds=3600)
        call = NodeCall("node-a", "GET", "/ops/transfers", 200, 0.004, None)
        n = 100_000
        started = time.perf_counter()
        for _ in range(n):
            bare(call)
        per_record = (time.perf_counter() - started) / n
        for i in range(OUTCOMES - 1):  # a spread of endpoints, codes and latency buckets
            bare(NodeCall("node-a", "GET", f"/r{i % 8}", 200 + i % 5, 0.001 * i, None))
        started = time.perf_counter()
        assert bare.flush()
        flush = time.perf_counter() - started
        bare.close()

    rows = [
        (f"node call, {name}: median of rounds (ms)", f"{statistics.median(times) * 1e3:.3f}")
        for name, times in rounds.items()
    ]
    rows += [
        ("spread of rounds, plain (min-max, ms)", spread(rounds["plain"])),
        ("ratio control / plain (the noise), median of rounds", ratio(rounds, "control")),
        ("ratio recorder / plain, median of rounds", ratio(rounds, "recorder")),
        ("recording one call, alone (µs)", f"{per_record * 1e6:.2f}"),
        (f"one flush to Redis, {OUTCOMES} distinct call outcomes (ms)", f"{flush * 1e3:.2f}"),
    ]  # fmt: skip
    print("| measure | value |\n|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print(
        f"\n{args.rounds} rounds of {args.calls} calls per client (GET /ping and one page of "
        "GET /ops/transfers, alternately) against one hstssim node on this machine; clients "
        "take turns within each round; the recorder flushes to its own redis-server every "
        "second."
    )


if __name__ == "__main__":
    main()
