"""Push or pull: which node runs a job's transfer, which grants its token, and what is posted.

push (the default): ``upload_setup`` on the destination grants a "send" token; the source runs
the transfer (``POST /ops/transfers`` there) and sends the bytes (node-api.md §3).
pull: ``download_setup`` on the source grants a "receive" token; the destination runs the
transfer and fetches the bytes, so only the destination opens connections (a source that
cannot reach the destination, e.g. behind a firewall).

The node that runs the transfer holds it: it is the one polled, searched by tag, paused and
canceled, and it is what ``attempts.source_node_id`` records (the column keeps its name).
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.db.tables import JobRow, NodeRow
from orchestrator.domain.jobs import TransferMode, TransferOptions
from orchestrator.domain.paths import confine
from orchestrator.domain.sshendpoints import SSH
from orchestrator.domain.transfers import (
    DownloadRequest,
    PathPair,
    TransferSpec,
    UploadRequest,
    attempt_tags,
)
from orchestrator.errors import NodeError
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.sshgrant import ssh_grants


def pulls(job: JobRow) -> bool:
    """Whether the destination runs this job's transfer."""
    return job.mode == TransferMode.PULL


def runner_id(job: JobRow) -> int:
    """The node that runs (holds) the job's transfer."""
    return job.destination_node_id if pulls(job) else job.source_node_id


def granter_id(job: JobRow) -> int:
    """The node whose ``*_setup`` grants the job's token (the other end of the transfer)."""
    return job.source_node_id if pulls(job) else job.destination_node_id


def runner(job: JobRow, source: NodeRow, destination: NodeRow) -> NodeRow:
    """Of the job's two nodes, the one that runs its transfer."""
    return destination if pulls(job) else source


def granter(job: JobRow, source: NodeRow, destination: NodeRow) -> NodeRow:
    """Of the job's two nodes, the one that grants its token."""
    return source if pulls(job) else destination


def _sources(job: JobRow) -> list[PathPair]:
    return [PathPair(source=p["source"]) for p in job.source_paths]


def request_grants(
    ctx: ServiceContext,
    node: NodeRow,
    mode: TransferMode,
    jobs: Sequence[JobRow],
) -> list[TransferSpec | NodeError]:
    """One ``*_setup`` call on ``node`` for jobs of one mode whose tokens it grants; a spec
    or an error per job, in order. The specs name ``node`` by its transfer address."""
    if node.kind == SSH:  # no Node API there: the spec comes from the registry
        return list(ssh_grants(ctx, node, [job.destination_path for job in jobs]))
    client = ctx.clients.get(node.id)
    life = ctx.settings.token_life_seconds
    if mode is TransferMode.PUSH:
        return client.upload_setup(
            [
                UploadRequest(
                    destination_root=job.destination_path,
                    remote_host=node.transfer_host,
                    token_life_seconds=life,
                )
                for job in jobs
            ]
        )
    # A download token binds the source list (node-api.md §2.4): we ask for exactly the
    # paths and root the POST will name.
    return client.download_setup(
        [
            DownloadRequest(
                sources=tuple(_sources(job)),
                source_root=confine(job.source_root, ""),
                remote_host=node.transfer_host,
                token_life_seconds=life,
            )
            for job in jobs
        ]
    )


def spec_to_post(
    job: JobRow, attempt_id: str, grant: TransferSpec, source: NodeRow, destination: NodeRow
) -> TransferSpec:
    """The spec posted to the node that runs the transfer: the grant's token and settings,
    our paths, tags and options, and the other node's transfer address."""
    options = TransferOptions.model_validate(job.options)
    other = granter(job, source, destination)
    spec = grant.for_source(
        _sources(job),
        source_root=confine(job.source_root, ""),
        tags=attempt_tags(attempt_id, job.id),
        remote_host=other.transfer_host,
        options=options.to_spec_fields(source_root=job.source_root),
    )
    if not pulls(job):
        return spec
    # The reference is silent on where a receive transfer writes; we read it as for a send:
    # destination_root is the folder on the node that runs the transfer, here the destination
    # (download_setup answers with destination_root "", node-api.md §10 F1/F3). The source
    # paths and source_root stay those the token was asked for, whatever the node echoed.
    # Source clean-up options (remove/move after transfer) pass through as for a push: ascp
    # applies them to the sending side whichever end runs it; the reference does not say
    # otherwise.
    return spec.model_copy(update={"destination_root": job.destination_path})
