"""hstssim's own CPU per transfer, with no orchestrator: tiny transfers posted and followed.

hstssim runs in a process of its own (``python -m hstssim --nodes 2*PAIRS``). This script is
the only client: for each pair it keeps ``--in-flight`` transfers open on the source node
(upload_setup on the destination for a batch of requests, one ``POST /ops/transfers`` each),
follows each source's change feed (``iteration_token``, ``Link`` rel="next", the summary view in
pages of 500, as the orchestrator polls) and posts more as
transfers complete, until ``--transfers`` have completed. The figure is the simulator's CPU
(user + system, from /proc) per completed transfer; the files landed are checked byte for
byte. ``--compare-with REV`` runs another revision's hstssim (a temporary git worktree) at the
same time and drives the two in turns of ``--round`` transfers per pair, each turn ending when
its transfers have completed and its CPU counted to the simulator that ran it, so both see the
same machine load; it prints both side by side with
their ratio.

    python benchmarks/sim_cost.py --transfers 2000
    python benchmarks/sim_cost.py --transfers 2000 --compare-with main
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import revisions

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    ("transfers", "transfers completed", "{:.0f}"),
    ("transfers_per_second", "transfers per second", "{:.1f}"),
    ("sim_cpu_ms_per_transfer", "CPU ms per transfer, hstssim", "{:.3f}"),
    ("client_cpu_ms_per_transfer", "CPU ms per transfer, this client", "{:.3f}"),
    ("requests_per_transfer", "node API requests per transfer", "{:.2f}"),
)
BATCH = 20  # transfer requests per upload_setup, as a submit batch sends them


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Pair:
    """One source node sending to one destination node, and the transfers it keeps open."""

    def __init__(self, src: dict[str, Any], dst: dict[str, Any], args: argparse.Namespace):
        self.src, self.dst, self.args = src, dst, args
        auth = (src["node_user"], src["node_password"])
        self.api = httpx.Client(base_url=src["api_url"], auth=auth, timeout=30)
        self.dst_api = httpx.Client(
            base_url=dst["api_url"], auth=(dst["node_user"], dst["node_password"]), timeout=30
        )
        self.token: str | None = None
        self.open: set[str] = set()
        self.posted = 0
        self.done = 0

    def post_more(self, target: int) -> None:
        """Post transfers until in-flight are open or target have been posted."""
        while len(self.open) < self.args.in_flight and self.posted < target:
            count = min(BATCH, self.args.in_flight - len(self.open), target - self.posted)
            requests = [
                {"transfer_request": {"paths": [{"destination": "/in"}]}} for _ in range(count)
            ]
            answer = self.dst_api.post(
                "/files/upload_setup", json={"transfer_requests": requests}
            ).json()
            for item in answer["transfer_specs"]:
                spec = {k: v for k, v in item["transfer_spec"].items() if v is not None}
                spec["paths"] = [{"source": f"out/f{self.posted}"}]
                spec["target_rate_kbps"] = self.args.rate_kbps
                spec["overwrite"] = "always"
                posted = self.api.post("/ops/transfers", json=spec)
                posted.raise_for_status()
                self.open.add(posted.json()["id"])
                self.posted += 1

    def poll(self) -> None:
        """Read the change feed until caught up; forget the transfers that completed."""
        while True:
            params = {"view": "summary", "count": "500"}  # as the orchestrator's poll asks
            if self.token is not None:
                params["iteration_token"] = self.token
            page = self.api.get("/ops/transfers", params=params)
            page.raise_for_status()
            for item in page.json():
                if item["status"] in ("failed", "canceled"):
                    raise SystemExit(f"transfer {item['id']} {item['status']}: {item}")
                if item["status"] == "completed" and item["id"] in self.open:
                    self.open.discard(item["id"])
                    self.done += 1
            token = page.links.get("next", {}).get("url", "").rsplit("=", 1)[-1] or self.token
            if token == self.token or not page.json():
                self.token = token
                return
            self.token = token


class Run:
    """One simulator under load: its pairs, the files it must land, its CPU and time."""

    def __init__(self, pid: int, nodes: list[dict[str, Any]], args: argparse.Namespace):
        self.pid, self.nodes = pid, nodes
        self.pairs = [Pair(nodes[2 * i], nodes[2 * i + 1], args) for i in range(args.pairs)]
        self.share = -(-args.transfers // args.pairs)
        self.payload: dict[tuple[str, str], bytes] = {}
        self.cpu = self.seconds = self.client_cpu = 0.0
        for pair in self.pairs:
            out = Path(pair.src["docroot"]) / "out"
            out.mkdir(parents=True)
            for i in range(self.share):
                data = os.urandom(args.file_size)
                (out / f"f{i}").write_bytes(data)
                self.payload[(pair.dst["docroot"], f"f{i}")] = data
            httpx.put(
                pair.src["api_url"] + "/admin/settings",
                json={"max_concurrent_sessions": args.in_flight},
                headers={"X-Admin-Token": pair.src["admin_token"]},
            ).raise_for_status()
            pair.poll()  # the feed's first token

    @property
    def done(self) -> int:
        """Transfers completed so far."""
        return sum(p.done for p in self.pairs)

    def turn(self, args: argparse.Namespace, upto: int) -> None:
        """Post transfers until upto per pair have been posted (or all of them), and follow
        them until every one has completed: nothing is left running when the turn ends, so
        the CPU of the turn is all this simulator spent on them."""
        upto = min(upto, self.share)
        cpu0, own0, started = cpu_seconds(self.pid), time.process_time(), time.monotonic()
        deadline = started + args.timeout
        while self.done < upto * len(self.pairs):
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out: {[p.done for p in self.pairs]} done")
            for pair in self.pairs:
                pair.post_more(upto)
            time.sleep(args.poll_interval)
            for pair in self.pairs:
                pair.poll()
        self.seconds += time.monotonic() - started
        self.cpu += cpu_seconds(self.pid) - cpu0
        self.client_cpu += time.process_time() - own0

    def figures(self) -> dict[str, float]:
        """Check the files landed and return the figures of the run."""
        requests = 0
        for node in self.nodes:
            counters = httpx.get(
                node["api_url"] + "/admin/counters", headers={"X-Admin-Token": node["admin_token"]}
            ).json()
            requests += sum(counters["requests"].values())
        for (docroot, name), data in self.payload.items():
            if (Path(docroot) / "in" / name).read_bytes() != data:
                raise SystemExit(f"{docroot}/in/{name} differs from its source")
        done = self.done
        return {
            "transfers": done,
            "transfers_per_second": done / self.seconds,
            "sim_cpu_ms_per_transfer": 1000 * self.cpu / done,
            "client_cpu_ms_per_transfer": 1000 * self.client_cpu / done,
            "requests_per_transfer": requests / done,
        }


def measure(args: argparse.Namespace, trees: list[Path]) -> list[dict[str, float]]:
    """Run the transfers on a fresh simulator of each tree, in turns; the figures of each."""
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        runs = []
        for i, tree in enumerate(trees):
            proc, nodes = stack.enter_context(
                revisions.simulator(Path(tmp) / str(i), 2 * args.pairs, tree)
            )
            runs.append(Run(proc.pid, nodes, args))
        upto = 0
        while upto < runs[0].share:
            upto += args.round
            for run in runs:
                run.turn(args, upto)
        return [run.figures() for run in runs]


def main() -> None:
    """Parse the options, measure (and the other revision), print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=100, help="open transfers per source")
    parser.add_argument("--file-size", type=int, default=1024)
    parser.add_argument("--rate-kbps", type=int, default=1_000_000)
    parser.add_argument("--poll-interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--compare-with", metavar="REV", help="a git revision to measure too")
    parser.add_argument(
        "--round", type=int, default=500, help="transfers per pair and turn with --compare-with"
    )
    args = parser.parse_args()
    if args.compare_with:
        with revisions.worktree(ROOT, args.compare_with) as other_tree:
            ours, other = measure(args, [ROOT, other_tree])
    else:
        ours, other = measure(args, [ROOT])[0], None
    revisions.print_side_by_side(FIGURES, ours, other, args.compare_with)
    print(
        f"\n{args.transfers} transfers of {args.file_size} bytes at {args.rate_kbps} kbps, "
        f"{args.pairs} node pairs, {args.in_flight} open per source node"
    )


if __name__ == "__main__":
    main()
