"""What the source nodes held, read through their admin API only, and the status lag sampled
while the soak runs.

A node forgets ended transfers when it restarts without its history, so the checker cannot
rely on the last listing alone: ``NodeHistory`` keeps every transfer any listing showed, and
what each restart forgot (``POST /admin/restart`` answers with them). ``LagSampler`` lists
the source nodes every second or so and reads the open jobs from the database: a job still
open while the node shows its transfer ended is late by (now - the node's end time).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.exc import DBAPIError

from tests.support.sim import SimAdmin
from tests.support.soak.stack import SimNode

NODE_ENDED = frozenset({"completed", "failed", "canceled"})
OPEN_STATES = ("submitting", "submitted", "running", "paused")  # a node transfer may exist


@dataclass
class NodeTransfer:
    """One transfer as a source node's admin API showed it last."""

    node: str
    id: str
    attempt: str | None  # its tags.orchestrator.attempt
    status: str
    end_usec: int
    bytes_transferred: int
    error_code: Any
    held: bool = True  # in the node's latest listing (False: forgotten by a restart)

    @property
    def ended(self) -> bool:
        """Whether the node ended it."""
        return self.status in NODE_ENDED

    @property
    def end_time(self) -> float | None:
        """The node's end time (epoch seconds), None while it runs."""
        return self.end_usec / 1e6 if self.ended and self.end_usec else None


def _tag(transfer: dict[str, Any]) -> str | None:
    tags = (transfer.get("start_spec") or {}).get("tags") or {}
    mine = tags.get("orchestrator") if isinstance(tags, dict) else None
    attempt = mine.get("attempt") if isinstance(mine, dict) else None
    return str(attempt) if attempt is not None else None


class NodeHistory:
    """Every transfer the source nodes were seen to hold, by (node, transfer id)."""

    def __init__(self, sources: list[SimNode]) -> None:
        self._admins = {node.name: SimAdmin(node) for node in sources}
        self._lock = threading.Lock()
        self.transfers: dict[tuple[str, str], NodeTransfer] = {}
        self.listings = 0

    @property
    def sources(self) -> list[str]:
        """The source nodes' names."""
        return list(self._admins)

    def capture(self, node: str) -> list[NodeTransfer]:
        """List what the node holds now and remember it; returns the listing."""
        with self._lock:
            listing = self._admins[node].transfers()
            held = {self._remember(node, raw, held=True) for raw in listing}
            for key, transfer in self.transfers.items():
                if key[0] == node and key not in held:
                    transfer.held = False
            self.listings += 1
            return [self.transfers[key] for key in held]

    def forgotten(self, node: str, listing: list[dict[str, Any]]) -> None:
        """Remember what a node restart forgot (its answer lists them)."""
        with self._lock:
            for raw in listing:
                self._remember(node, raw, held=False)

    def _remember(self, node: str, raw: dict[str, Any], *, held: bool) -> tuple[str, str]:
        key = (node, str(raw["id"]))
        self.transfers[key] = NodeTransfer(
            node=node,
            id=str(raw["id"]),
            attempt=_tag(raw),
            status=str(raw["status"]),
            end_usec=int(raw.get("end_time_usec") or 0),
            bytes_transferred=int(raw.get("bytes_transferred") or 0),
            error_code=raw.get("error_code"),
            held=held,
        )
        return key

    def capture_all(self) -> None:
        """List every source node."""
        for node in self._admins:
            self.capture(node)

    def all(self) -> list[NodeTransfer]:
        """Every transfer ever seen."""
        with self._lock:
            return list(self.transfers.values())

    def close(self) -> None:
        """Close the admin clients."""
        for admin in self._admins.values():
            admin.close()


@dataclass
class Lag:
    """The status lag seen by sampling: a job still open after its node transfer ended."""

    threshold: float  # 2 poll intervals
    samples: int = 0
    worst: float = 0.0
    worst_what: str = ""
    worst_settling: float = 0.0  # the worst after the chaos stopped
    late: set[str] = field(default_factory=set)  # attempts seen late by more than the threshold
    failed_samples: int = 0  # a node or the database did not answer (an outage)


class LagSampler:
    """A thread that samples the status lag until stopped."""

    def __init__(self, history: NodeHistory, engine: Engine, *, threshold: float, every: float):
        self.history = history
        self.engine = engine
        self.every = every
        self.lag = Lag(threshold)
        self.settling = False  # set once the chaos has stopped
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-lag-sampler", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        period = self.every
        while not self._stop.wait(period):
            began = time.monotonic()
            try:
                self.sample()
            except (httpx.HTTPError, DBAPIError):
                self.lag.failed_samples += 1
            # Listing every transfer grows with the run: never spend more than a third of the
            # time sampling (the machine is shared with the stack under test).
            period = max(self.every, 2 * (time.monotonic() - began))

    def sample(self) -> None:
        """One sample: list the source nodes, then read the open jobs."""
        ended: dict[str, NodeTransfer] = {}
        for node in self.history.sources:
            for transfer in self.history.capture(node):
                if transfer.attempt is not None and transfer.end_time is not None:
                    ended[transfer.attempt] = transfer
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.id, a.job_id, j.state FROM attempts a "
                    "JOIN jobs j ON j.id = a.job_id "
                    "WHERE j.state IN :open AND a.number = j.attempt_count"
                ).bindparams(bindparam("open", expanding=True)),
                {"open": list(OPEN_STATES)},
            ).all()
        now = time.time()
        self.lag.samples += 1
        for attempt_id, job_id, state in rows:
            transfer = ended.get(str(attempt_id))
            if transfer is None or transfer.end_time is None:
                continue
            late = now - transfer.end_time
            if late > self.lag.worst:
                self.lag.worst = late
                self.lag.worst_what = (
                    f"job {job_id} {state}, transfer {transfer.id} {transfer.status} on "
                    f"{transfer.node}"
                )
            if self.settling:
                self.lag.worst_settling = max(self.lag.worst_settling, late)
            if late > self.lag.threshold:
                self.lag.late.add(str(attempt_id))
