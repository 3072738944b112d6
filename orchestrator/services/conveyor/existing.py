"""After "file exists" (ascp 42): compare the destination's files with the source's, post nothing.

Equal sizes everywhere: the job counts as done. A difference (or a file absent on one side)
fails it with the file's name and the advice to set overwrite. Either way the job ends here,
so a destination that already has the file can never make a job loop.

Sizes come from /files/info and /files/browse (node-api.md §7.3). Neither reports a
checksum, so size is the whole comparison: the tolerant reading of "checksum where the node
reports one" when no node does.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from sqlalchemy import select, update

from orchestrator.db.engine import rowcount
from orchestrator.db.tables import AttemptRow, JobRow, NodeRow
from orchestrator.domain.paths import confine
from orchestrator.domain.remediation import EXISTS_CODES
from orchestrator.domain.states import AttemptState, JobState
from orchestrator.domain.transfers import FileEntry
from orchestrator.errors import NodeError
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.transitions import move

MAX_FILES = 10_000  # a tree bigger than this is not walked: the job fails asking for overwrite
SET_OVERWRITE = 'set the job\'s options.overwrite ("always", or "diff" to skip equal files)'


@dataclass(frozen=True)
class Comparison:
    """Whether the destination already holds the source's files, and the sentence saying so."""

    done: bool
    text: str
    unsure: bool = False  # a node could not answer: a person decides

    @property
    def target(self) -> JobState:
        """Where the comparison sends the job."""
        if self.unsure:
            return JobState.NEEDS_ATTENTION
        return JobState.COMPLETED if self.done else JobState.FAILED


def needs_comparison(ctx: ServiceContext, job: JobRow, attempt: AttemptRow) -> bool:
    """Whether the job's attempt before this one ended with "file exists"."""
    if job.error_code not in EXISTS_CODES:
        return False
    with ctx.sessions() as session:
        code = session.scalar(
            select(AttemptRow.error_code).where(
                AttemptRow.job_id == job.id, AttemptRow.number == attempt.number - 1
            )
        )
    return code in EXISTS_CODES


def compare(ctx: ServiceContext, job: JobRow, source: NodeRow, destination: NodeRow) -> Comparison:
    """Walk each source path and its copy on the destination; the first difference decides."""
    try:
        return _compare(ctx, job, source, destination)
    except NodeError as exc:
        return Comparison(
            False,
            f"a destination file exists and the sizes cannot be compared ({exc}); check "
            f"{destination.name}:{job.destination_path}, then retry with overwrite set or cancel",
            unsure=True,
        )


def _compare(ctx: ServiceContext, job: JobRow, source: NodeRow, destination: NodeRow) -> Comparison:
    src, dst = ctx.clients.get(source.id), ctx.clients.get(destination.id)
    checked = 0
    for item in job.source_paths:
        there = confine(job.source_root, item["source"])
        name = posixpath.basename(there.rstrip("/")) or "/"
        here = confine("/", posixpath.join(job.destination_path, name))
        source_files = _files(src, there)
        destination_files = _files(dst, here)
        if source_files is None or len(source_files) > MAX_FILES:
            return Comparison(
                False, f"{there} on {source.name} is too big to compare; {SET_OVERWRITE}"
            )
        for rel, size in sorted(source_files.items()):
            target = posixpath.join(here, rel) if rel else here
            have = (destination_files or {}).get(rel)
            if have is None:
                return Comparison(
                    False,
                    f"destination file {destination.name}:{target} is missing while another "
                    f"file there stopped the transfer; {SET_OVERWRITE}",
                )
            if have != size:
                return Comparison(
                    False,
                    f"destination file {destination.name}:{target} exists and differs from the "
                    f"source ({have} bytes there, {size} on {source.name}); {SET_OVERWRITE}",
                )
            checked += 1
    return Comparison(
        True,
        f"the destination already holds the source's {checked} file(s), equal in size: "
        "counted as done",
    )


def _files(client: NodeClient, path: str) -> dict[str, int] | None:
    """Relative path → size of every file at or under ``path`` ({} when it is not there)."""
    (entry,) = client.files_info([path])
    if isinstance(entry, NodeError):
        if entry.status == 404:
            return {}
        raise entry
    if entry.type != "directory":
        return {"": entry.size}
    found: dict[str, int] = {}
    folders = [path]
    while folders:
        folder = folders.pop()
        listing: list[FileEntry] = client.browse(folder, limit=MAX_FILES + 1)
        for item in listing:
            if item.type == "directory":
                folders.append(item.path)
            else:
                found[posixpath.relpath(item.path, path)] = item.size
        if len(found) > MAX_FILES:
            return None
    return found


def settle(ctx: ServiceContext, job: JobRow, attempt: AttemptRow, result: Comparison) -> bool:
    """End the job as the comparison says, its attempt never posted; False if it moved on."""
    now = ctx.now()
    target = result.target
    with ctx.unit_of_work() as work:
        abandoned = work.session.execute(
            update(AttemptRow)
            .where(
                AttemptRow.id == attempt.id,
                AttemptRow.post_started_at.is_(None),
                AttemptRow.remote_id.is_(None),
            )
            .values(status=AttemptState.ABANDONED, ended_at=now, error_text=result.text)
        )
        values: dict[str, object] = {"next_attempt_at": None}
        if not result.done:
            values["reason"] = result.text
        moved = rowcount(abandoned) == 1 and move(
            work,
            job.id,
            JobState.SUBMITTING,
            target,
            f"not posted: {result.text}",
            at=now,
            values=values,
        )
        if not moved:
            work.rollback()
            return False
        work.commit()
    return True
