"""Before a batch is posted: do its source paths exist on the source node, and how big are they?

One POST /files/info per source node per batch (node-api.md §7.3, per-path errors §10 F6).
Only a per-path 404 proves a path is missing. A node that cannot answer (an error, an old node
without the endpoint, a bearer-token node, which gen3 file calls refuse) leaves its jobs
unchecked: they are posted as before, and the reason is logged once until the node answers.
Sizes come only from files: /files/info gives a directory no size, and a walk (browse, or
/files/du per directory) would cost a request or more per job, so a directory's total is left
to the node (its `precalc` with `precalculate_job_size`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.db.tables import JobRow, NodeRow
from orchestrator.domain.paths import confine
from orchestrator.domain.transfers import FileEntry
from orchestrator.errors import ConfigError, NodeError
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext

log = logging.getLogger(__name__)

MAX_PATHS = 1000  # paths per /files/info request: a batch of 100 jobs of one path takes one
NAMED = 3  # a reason names at most this many missing paths


@dataclass(frozen=True)
class Verdict:
    """What the source node said about one job's source paths."""

    missing: tuple[str, ...] = ()  # the job's paths the node does not have (its 404s)
    bytes_expected: int | None = None  # every path a file: their total size
    files_expected: int | None = None

    def reason(self, node: str) -> str:
        """The sentence a failed job carries: which paths, on which node."""
        named = ", ".join(self.missing[:NAMED])
        more = len(self.missing) - NAMED
        if more > 0:
            named += f" and {more} more"
        if len(self.missing) == 1:
            return f"source path {named} does not exist on {node}"
        return f"source paths {named} do not exist on {node}"


class _Quiet:
    """Logs why a node's sources go unchecked once (again when the reason changes), until the
    node answers again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._told: dict[str, str] = {}

    def failed(self, node: str, why: str) -> None:
        with self._lock:
            first = self._told.get(node) != why
            self._told[node] = why
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "source paths on %s are not checked before posting (posted as before): %s",
            node,
            why,
        )

    def answered(self, node: str) -> None:
        with self._lock:
            self._told.pop(node, None)


_quiet = _Quiet()


def check_sources(
    ctx: ServiceContext,
    jobs: Sequence[tuple[JobRow, NodeRow]],
    *,
    before_call: Callable[[], None] = lambda: None,
) -> dict[str, Verdict]:
    """A verdict per job whose source node answered; a job left out is posted unchecked.

    ``jobs`` pairs each job with its source node; ``before_call`` runs before each node
    request (the submit batch renews its leases there).
    """
    by_node: dict[int, list[JobRow]] = {}
    nodes: dict[int, NodeRow] = {}
    for job, node in jobs:
        by_node.setdefault(node.id, []).append(job)
        nodes[node.id] = node
    verdicts: dict[str, Verdict] = {}
    for node_id, node_jobs in by_node.items():
        node = nodes[node_id]
        if node.auth_kind == "bearer":
            _quiet.failed(node.name, "/files/info does not accept bearer tokens (node-api.md §1.2)")
            continue
        wanted = {job.id: _paths(job) for job in node_jobs}
        asked = sorted({path for paths in wanted.values() for path in paths})
        found = _ask(ctx, node, asked, before_call)
        if found is None:
            continue
        for job in node_jobs:
            verdicts[job.id] = _verdict(job, wanted[job.id], found)
    return verdicts


def _paths(job: JobRow) -> list[str]:
    """The job's source paths within the node's docroot, as the transfer will read them (the
    spec's ``source_root`` is the job's root, its paths are the job's paths under it)."""
    return [confine(job.source_root, p["source"]) for p in job.source_paths]


def _ask(
    ctx: ServiceContext, node: NodeRow, paths: list[str], before_call: Callable[[], None]
) -> dict[str, FileEntry | NodeError] | None:
    """Each path's entry or per-path error, or None when the node's answer cannot be used."""
    found: dict[str, FileEntry | NodeError] = {}
    try:
        client: NodeClient = ctx.clients.get(node.id)
        for start in range(0, len(paths), MAX_PATHS):
            chunk = paths[start : start + MAX_PATHS]
            before_call()
            answers = client.files_info(chunk)
            if len(answers) != len(chunk):
                _quiet.failed(node.name, f"/files/info answered {len(answers)} of {len(chunk)}")
                return None
            found.update(zip(chunk, answers, strict=True))
    except (NodeError, ConfigError) as exc:
        _quiet.failed(node.name, str(exc))
        return None
    _quiet.answered(node.name)
    return found


def _verdict(job: JobRow, absolute: list[str], found: dict[str, FileEntry | NodeError]) -> Verdict:
    """Missing paths first; sizes only when every path is a plain file."""
    answers = [found[path] for path in absolute]
    missing = tuple(
        p["source"]
        for p, answer in zip(job.source_paths, answers, strict=True)
        if isinstance(answer, NodeError) and answer.status == 404
    )
    if missing:
        return Verdict(missing=missing)
    sizes = [a.size for a in answers if isinstance(a, FileEntry) and a.type == "file"]
    if len(sizes) != len(answers):  # a folder, a link or a path the node would not describe
        return Verdict()
    return Verdict(bytes_expected=sum(sizes), files_expected=len(sizes))
