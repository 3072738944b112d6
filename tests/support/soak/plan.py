"""A soak's plan, drawn whole from one seed before anything starts: the jobs (which pair, which
files, what rate, when each is created) and the chaos schedule (what breaks, when, how long).

The same seed and sizes give the same plan; only the machine's timing differs between runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Short intervals, as tests/workers' TIMINGS, so that every recovery path (lease expiry, sweep,
# re-poll, by-id confirmation) runs many times in a few minutes. A transfer the node no longer
# knows (a restart without history) is retried after 5 s instead of 10 min.
SOAK_TIMINGS: dict[str, object] = {
    "poll_interval": 0.5,
    "sweep_interval": 1.0,
    "node_connect_timeout": 1.0,
    "node_read_timeout": 3.0,
    "submit_lease_seconds": 4.5,
    "post_settle_seconds": 4.5,
    "poll_lease_seconds": 4.5,
    "retry_backoff_seconds": 0.2,
    "retry_backoff_max_seconds": 1.0,
    "queued_sweep_seconds": 0.5,
    "unseen_check_seconds": 30.0,
    "lost_after_seconds": 5.0,
}
NODE_LIMIT = 20  # max_outbound / max_inbound of every registered node
NODE_MAX_RETRIES = 3  # node-side session retries (hstssim --max-retries)
ENDPOINTS = (  # what http_error and hang bursts aim at; "*" is every Node API endpoint
    "*",
    "GET /ops/transfers",
    "GET /ops/transfers/{id}",
    "POST /ops/transfers",
    "POST /files/upload_setup",
)
FILE_SIZES = (0, 700, 6_000, 24_000, 90_000)  # bytes; a job has one to three files
FILE_WEIGHTS = (1, 3, 4, 3, 1)
RATES = (0, 0, 0, 800, 400, 200)  # target_rate_kbps (0: unlimited); 90 kB at 200 kbps ≈ 3.6 s

# What the chaos driver does, and how often relative to the others.
CHAOS_WEIGHTS: dict[str, float] = {
    "kill_worker": 3.0,
    "kill_beat": 1.2,
    "kill_redis": 1.2,
    "cut_database": 2.0,
    "restart_node": 1.5,
    "http_error": 1.5,
    "hang": 1.2,
    "dropped_post": 1.2,
    "empty_200": 1.0,
    "short_page": 0.8,
    "repeat_change": 0.8,
    "failing_transfer": 0.8,
    "spec_echo": 0.8,
    "content_type": 0.8,
    "failed_code_zero": 0.15,
}


@dataclass(frozen=True)
class SoakConfig:
    """What to run: the seed decides everything else that is random."""

    seed: int
    jobs: int
    chaos_seconds: float
    database_url: str
    workdir: Path
    pairs: int = 2
    workers: int = 2
    fault_gap: float = 2.0  # mean seconds between two chaos events
    settle_seconds: float = 90.0  # after chaos ends, every job must settle within this
    sample_seconds: float = 1.0  # how often the lag sampler looks
    timings: dict[str, object] = field(default_factory=lambda: dict(SOAK_TIMINGS))

    @property
    def poll_interval(self) -> float:
        """The orchestrator's poll interval in this run."""
        return float(str(self.timings["poll_interval"]))


@dataclass(frozen=True)
class PlannedJob:
    """One job: node pair, a folder of files on the source, a rate, and when it is created."""

    index: int
    pair: int
    folder: str
    sizes: tuple[int, ...]
    rate_kbps: int
    at: float  # seconds after the start of the chaos window

    def files(self, seed: int) -> dict[str, bytes]:
        """The job's files (paths relative to the source docroot), the same for every run."""
        rng = random.Random(f"{seed}:{self.index}")
        return {
            f"{self.folder}/{'sub/' if k % 2 else ''}f{k}.bin": rng.randbytes(size)
            for k, size in enumerate(self.sizes)
        }


@dataclass(frozen=True)
class ChaosEvent:
    """One thing the chaos driver does at ``at`` seconds into the chaos window."""

    at: float
    kind: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """Everything a run does that is random, from one seed."""

    jobs: list[PlannedJob]
    chaos: list[ChaosEvent]


def make_plan(config: SoakConfig) -> Plan:
    """Draw the jobs, then the chaos schedule, from ``random.Random(seed)``."""
    rng = random.Random(config.seed)
    window = config.chaos_seconds * 0.85  # jobs keep coming until near the end of the chaos
    times = sorted(rng.uniform(0.0, window) for _ in range(config.jobs))
    jobs = []
    for index, at in enumerate(times):
        sizes = tuple(rng.choices(FILE_SIZES, FILE_WEIGHTS, k=rng.randint(1, 3)))
        jobs.append(
            PlannedJob(
                index=index,
                pair=index % config.pairs,
                folder=f"j{index:05d}",
                sizes=sizes,
                rate_kbps=rng.choice(RATES),
                at=at,
            )
        )
    chaos = []
    at = rng.expovariate(1.0 / config.fault_gap)
    kinds, weights = zip(*CHAOS_WEIGHTS.items(), strict=True)
    while at < config.chaos_seconds:
        kind = rng.choices(kinds, weights)[0]
        chaos.append(ChaosEvent(at, kind, _params(rng, kind, config)))
        at += rng.expovariate(1.0 / config.fault_gap)
    return Plan(jobs, chaos)


def _params(rng: random.Random, kind: str, config: SoakConfig) -> dict[str, Any]:
    """The details of one chaos event (which process or node, how long, how many times)."""
    pair = rng.randrange(config.pairs)
    if kind == "kill_worker":
        return {"worker": rng.randrange(config.workers), "down": rng.uniform(0.2, 3.0)}
    if kind == "kill_beat":
        return {"down": rng.uniform(0.2, 3.0)}
    if kind == "kill_redis":
        return {"down": rng.uniform(0.3, 2.5)}
    if kind == "cut_database":
        return {"hold": rng.uniform(0.3, 2.0)}  # SQLite: how long the exclusive lock is held
    if kind == "restart_node":
        return {"pair": pair, "keep_history": rng.random() < 0.5}
    if kind in ("http_error", "hang"):
        endpoint = rng.choice(ENDPOINTS)
        # upload_setup is asked of the destination; "*" hits either end; the rest the source.
        if endpoint == "POST /files/upload_setup":
            role = "destination"
        elif endpoint == "*":
            role = rng.choice(("source", "destination"))
        else:
            role = "source"
        fault: dict[str, Any] = {"kind": kind, "endpoint": endpoint}
        if kind == "http_error":
            fault |= {"status": rng.choice((500, 502, 503)), "count": rng.randint(2, 8)}
        else:  # 4 s outlasts the 3 s read timeout: the client gives up on a slow answer
            fault |= {"seconds": rng.choice((0.5, 1.5, 4.0)), "count": rng.randint(1, 3)}
        fault["after_effect"] = endpoint == "POST /ops/transfers" and rng.random() < 0.5
        return {"pair": pair, "role": role, "faults": [fault]}
    if kind == "content_type":
        fault = {
            "kind": "content_type",
            "endpoint": "POST /files/upload_setup",
            "count": rng.randint(1, 3),
        }
        return {"pair": pair, "role": "destination", "faults": [fault]}
    return {"pair": pair, "role": "source", "faults": _source_faults(rng, kind)}


def _source_faults(rng: random.Random, kind: str) -> list[dict[str, Any]]:
    """The hstssim faults one chaos event arms on a source node."""
    if kind == "dropped_post":  # the node creates the transfer; the answer never comes
        return [
            {
                "kind": "close_connection",
                "endpoint": "POST /ops/transfers",
                "after_effect": True,
                "count": rng.randint(1, 2),
            }
        ]
    if kind == "empty_200":
        return [
            {"kind": "empty_200", "endpoint": "GET /ops/transfers/{id}", "count": rng.randint(1, 4)}
        ]
    if kind == "short_page":
        return [{"kind": "short_page", "size": rng.randint(1, 3), "count": rng.randint(1, 5)}]
    if kind == "repeat_change":
        where = rng.choice(("previous_page", "same_page"))
        return [{"kind": "repeat_change", "where": where, "count": rng.randint(1, 3)}]
    if kind == "failing_transfer":  # a retryable failure outlasting the node's own retries,
        return [  # its code shown as a string
            {"kind": "error_code_string", "count": 1},
            {"kind": "fail_transfers", "error_code": 36, "count": NODE_MAX_RETRIES + 1},
        ]
    if kind == "spec_echo":
        return [{"kind": "spec_echo", "count": rng.randint(1, 3)}]
    if kind == "failed_code_zero":
        return [{"kind": "failed_code_zero", "count": 1}]
    raise ValueError(f"unknown chaos kind {kind!r}")
