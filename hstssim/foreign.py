"""Other clients' transfers: started through the admin API, they only take capacity and slots."""

# Such a transfer moves no files: it counts bytes at the rate its links give it, holds a session
# slot while it runs, and shows in the feed with the tags it was given (none by default), as the
# work of another Node API client would.

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hstssim.model import ForeignLoad, SessionRecord
from hstssim.pacing import Pacer
from hstssim.spec import DIRECTIONS, RATE_POLICIES, PathPair, SpecError, TransferSpec, as_int

FIELDS = ("peer", "direction", "bytes", "target_rate_kbps", "min_rate_kbps", "rate_policy")
FIELDS_ALSO = ("tags", "title")


@dataclass(frozen=True)
class ForeignRequest:
    """A validated POST /admin/foreign_transfers body."""

    load: ForeignLoad
    spec: TransferSpec


def parse(body: Any, known: Callable[[str], tuple[str, int] | None]) -> ForeignRequest:
    """Validate the body; known(name) gives a peer's (host, fasp_port) or None if unknown."""
    if not isinstance(body, dict):
        raise SpecError("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS) - set(FIELDS_ALSO))
    if unknown:
        raise SpecError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}, tags")
    peer = body.get("peer")
    if not isinstance(peer, str) or not peer:
        raise SpecError("peer must name another node of the cluster, e.g. node-b")
    where = known(peer)
    if where is None:
        raise SpecError(f"peer {peer!r} is not a node of this cluster")
    direction = body.get("direction", "send")
    if direction not in DIRECTIONS:
        raise SpecError("direction must be send or receive")
    target = as_int(body.get("target_rate_kbps"), "target_rate_kbps", 1)
    total = body.get("bytes")
    policy = body.get("rate_policy", "fair")
    if policy not in RATE_POLICIES:
        raise SpecError(f"rate_policy must be one of {', '.join(RATE_POLICIES)}")
    tags = body.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise SpecError("tags must be an object")
    title = body.get("title")
    if title is not None and not isinstance(title, str):
        raise SpecError("title must be a string")
    spec = TransferSpec(
        direction=direction,
        remote_host=where[0],
        remote_user="xfer",
        token="",  # another client's session: nothing to authenticate here
        fasp_port=where[1],
        ssh_port=where[1],
        paths=(PathPair("/other-client/data", None),),
        source_root="",
        destination_root="/other-client",
        target_rate_kbps=target,
        min_rate_kbps=as_int(body.get("min_rate_kbps", 0), "min_rate_kbps"),
        rate_policy=policy,
        overwrite="diff",
        resume_policy="none",
        precalculate_job_size=False,
        tags=tags,
        cookie=None,
        title=title,
        cipher="none",
        create_dir=True,
        remote_access_key=None,
    )
    load = ForeignLoad(peer, None if total is None else as_int(total, "bytes", 1))
    return ForeignRequest(load, spec)


async def move(
    load: ForeignLoad, session: SessionRecord, pacer: Pacer, moved: Callable[[], None]
) -> None:
    """Count bytes at the pacer's rate until the load is done (or for ever, until canceled)."""
    while load.total_bytes is None or session.bytes_transferred < load.total_bytes:
        size = pacer.chunk_size
        if load.total_bytes is not None:
            size = min(size, load.total_bytes - session.bytes_transferred)
        await pacer.wait(size)
        session.bytes_transferred += size
        session.bytes_written += size
        moved()
