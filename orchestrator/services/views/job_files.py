"""A job's files as its source node lists them: read on demand, one page at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from orchestrator.db.tables import AttemptRow
from orchestrator.domain.transfers import TransferFile
from orchestrator.errors import NodeError
from orchestrator.logsetup import redact
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import get_job

FILES_PER_PAGE = 50


@dataclass(frozen=True)
class FilesPage:
    """One page of a node transfer's files, or why the node could not list them."""

    attempt: int | None  # the attempt whose transfer was listed; None: none reached the node
    remote_id: str | None
    items: list[TransferFile] = field(default_factory=list)
    offset: int = 0
    total: int = 0  # files the node reported in all
    problem: str | None = None  # the node could not be asked, in words

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts, or None on the last one."""
        end = self.offset + len(self.items)
        return end if end < self.total else None

    @property
    def previous_offset(self) -> int | None:
        """Where the page before starts, or None on the first one."""
        return max(0, self.offset - FILES_PER_PAGE) if self.offset > 0 else None


def job_files(
    ctx: ServiceContext,
    job_id: str,
    *,
    attempt: int | None = None,
    offset: int = 0,
    limit: int = FILES_PER_PAGE,
) -> FilesPage:
    """The files of one attempt's node transfer (by default the newest that reached the
    node), from ``offset``; a node that cannot answer gives a page with ``problem`` set."""
    if offset < 0 or limit < 1:
        raise ValueError("offset: must be 0 or more, with a limit of 1 or more")
    with ctx.sessions() as session:
        get_job(session, job_id)
        query = select(
            AttemptRow.number,
            AttemptRow.remote_id,
            AttemptRow.source_node_id,  # its runner
        ).where(AttemptRow.job_id == job_id, AttemptRow.remote_id.is_not(None))
        if attempt is not None:
            query = query.where(AttemptRow.number == attempt)
        found = session.execute(query.order_by(AttemptRow.number.desc()).limit(1)).first()
    if found is None:
        return FilesPage(attempt=None, remote_id=None)
    number, remote_id, runner_id = found[0], str(found[1]), int(found[2])
    try:
        files = ctx.clients.get(runner_id).transfer_files(remote_id)
    except NodeError as exc:
        return FilesPage(number, remote_id, offset=offset, problem=_in_words(exc))
    return FilesPage(
        number, remote_id, items=files[offset : offset + limit], offset=offset, total=len(files)
    )


def _in_words(exc: NodeError) -> str:
    # Node texts may quote what they were sent: masked like every stored reason.
    return redact(f"the node could not list the files: {exc}")
