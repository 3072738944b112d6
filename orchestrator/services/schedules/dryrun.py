"""A schedule's dry run: list both sides with /files/browse and say what the next run would move."""

from __future__ import annotations

import posixpath
import time
from collections import deque
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.tables import NodeRow
from orchestrator.domain.paths import confine
from orchestrator.domain.transfers import FileEntry
from orchestrator.errors import NodeNotFound
from orchestrator.nodeapi.client import NodeClient
from orchestrator.services.context import ServiceContext
from orchestrator.services.schedules.store import get_schedule, spec_of

MAX_ENTRIES = 100_000  # files and folders listed in all before the preview stops
MAX_SECONDS = 60.0  # listing time before the preview stops (it answers an API request)
MAX_LISTED = 1000  # planned files returned one by one

WHY = {
    "new": "not at the destination",
    "changed": "size differs",
    "maybe": "same size, newer at the source: the transfer compares checksums",
    "newer": "newer at the source",
    "overwrite": "the overwrite policy is 'always'",
}


@dataclass(frozen=True)
class PlannedFile:
    """One file the run would move, and why."""

    path: str
    size: int
    why: str


@dataclass
class Tally:
    """A count of files and their bytes."""

    files: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        """Count one file."""
        self.files += 1
        self.bytes += size


@dataclass
class DryRun:
    """What the next run of a schedule would move, by reason, with totals."""

    schedule_id: str
    overwrite: str
    source: Tally = field(default_factory=Tally)
    to_move: Tally = field(default_factory=Tally)
    new: Tally = field(default_factory=Tally)
    changed: Tally = field(default_factory=Tally)
    maybe_changed: Tally = field(default_factory=Tally)
    unchanged: Tally = field(default_factory=Tally)
    files: list[PlannedFile] = field(default_factory=list)
    missing_sources: list[str] = field(default_factory=list)
    source_errors: list[str] = field(default_factory=list)
    links: int = 0
    truncated: bool = False
    listed: int = 0
    deadline: float = field(default=0.0, repr=False)


def dry_run(ctx: ServiceContext, schedule_id: str) -> DryRun:
    """Compare the source paths with the destination folder as the next run would (a fan-out
    schedule: its first destination)."""
    with ctx.sessions() as session:
        row = get_schedule(session, schedule_id)
        spec = spec_of(session, row)
        source = ctx.clients.get(row.source_node_id)
        destination = ctx.clients.get(row.destination_node_id)
        source_root, destination_root = _roots(session, row.source_node_id, row.destination_node_id)
    policy = spec.options.overwrite or "diff"
    result = DryRun(schedule_id=schedule_id, overwrite=policy)
    # A fan-out schedule: compared with its first destination (row.destination_*), as listed.
    target = confine(destination_root, row.destination_path)
    result.deadline = time.monotonic() + MAX_SECONDS
    for path in spec.source_paths:
        absolute = confine(source_root, path)
        found = source.files_info([absolute])[0]
        if isinstance(found, NodeNotFound):
            result.missing_sources.append(path)
            continue
        if isinstance(found, Exception):
            result.source_errors.append(f"{path}: {found}")
            continue
        name = posixpath.basename(absolute)
        if found.type == "symbolic_link":
            result.links += 1  # the transfer's symlink policy decides; not compared here
            continue
        if found.type == "file":
            theirs = _listing(destination, target, result, recursive=False)
            _compare({name: found}, theirs, name_prefix="", policy=policy, result=result)
            continue
        ours = _listing(source, absolute, result, recursive=True, mine=True)
        theirs = _listing(destination, posixpath.join(target, name), result, recursive=True)
        _compare(ours, theirs, name_prefix=name + "/", policy=policy, result=result)
    return result


def _roots(session: Session, source_id: int, destination_id: int) -> tuple[str, str]:
    roots = dict(
        session.execute(
            select(NodeRow.id, NodeRow.root_path).where(NodeRow.id.in_((source_id, destination_id)))
        ).all()
    )
    return roots[source_id], roots[destination_id]


def _listing(
    client: NodeClient, top: str, result: DryRun, *, recursive: bool, mine: bool = False
) -> dict[str, FileEntry]:
    """Files under ``top`` by path relative to it (empty when ``top`` does not exist)."""
    files: dict[str, FileEntry] = {}
    folders = deque([top])
    while folders:
        if time.monotonic() > result.deadline:
            result.truncated = True
            return files
        folder = folders.popleft()
        try:
            entries = client.browse(folder, limit=MAX_ENTRIES)
        except NodeNotFound:
            continue
        for entry in entries:
            result.listed += 1
            if result.listed > MAX_ENTRIES:
                result.truncated = True
                return files
            relative = posixpath.relpath(entry.path, top)
            if entry.type == "file":
                files[relative] = entry
            elif entry.type in ("directory", "folder") and recursive:
                folders.append(entry.path)
            elif entry.type == "symbolic_link" and mine:
                result.links += 1
    return files


def _compare(
    ours: dict[str, FileEntry],
    theirs: dict[str, FileEntry],
    *,
    name_prefix: str,
    policy: str,
    result: DryRun,
) -> None:
    for relative, mine in sorted(ours.items()):
        result.source.add(mine.size)
        other = theirs.get(relative)
        reason = _reason(mine, other, policy)
        tally = {
            "new": result.new,
            "changed": result.changed,
            "maybe": result.maybe_changed,
            "overwrite": result.changed,
            "newer": result.changed,
            None: result.unchanged,
        }[reason]
        tally.add(mine.size)
        if reason is None:
            continue
        result.to_move.add(mine.size)
        if len(result.files) < MAX_LISTED:
            result.files.append(PlannedFile(name_prefix + relative, mine.size, WHY[reason]))


def _reason(mine: FileEntry, other: FileEntry | None, policy: str) -> str | None:
    """Why the overwrite policy would move this file (None: it stays)."""
    if other is None:
        return "new"
    if policy == "always":
        return "overwrite"
    if policy == "never":
        return None
    newer = bool(mine.modified_at and other.modified_at and mine.modified_at > other.modified_at)
    if policy == "older":
        return "newer" if newer else None
    if policy == "diff+older" and not newer:
        return None
    if mine.size != other.size:
        return "changed"
    return "maybe" if newer else None
