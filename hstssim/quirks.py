"""Answer shapes some real nodes give, armed as faults: the POST spec echo and odd feed pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hstssim.faults import FaultRegistry, FaultSpec, RepeatChange, ShortPage
from hstssim.model import Transfer
from hstssim.store import TransferStore

# Members of OAS446 transferResponseSpec that are echoed from the POST body when present.
_ECHOED = (
    "content_protection",
    "symlink_policy",
    "delete_source",
    "remove_after_transfer",
    "remove_empty_directories",
    "multi_session",
    "multi_session_threshold",
    "file_checksum",
    "src_base",
    "delete_before_transfer",
    "preserve_access_time",
    "preserve_modification_time",
    "preserve_creation_time",
    "preserve_file_owner_uid",
    "preserve_file_owner_gid",
    "preserve_xattrs",
    "remote_preserve_xattrs",
    "preserve_acls",
    "remote_preserve_acls",
    "use_ascp4",
)


def spec_echo(transfer: Transfer, body: dict[str, Any]) -> dict[str, Any]:
    """Return the OAS446 transferResponseSpec of a new transfer: its spec plus id, no status."""
    spec = transfer.spec
    echo: dict[str, Any] = {
        "id": transfer.id,
        "token": spec.token,
        "direction": spec.direction,
        "remote_host": spec.remote_host,
        "remote_user": spec.remote_user,
        "source_root": spec.source_root,
        "destination_root": spec.destination_root,
        "fasp_port": spec.fasp_port,
        "ssh_port": spec.ssh_port,
        "rate_policy": transfer.rate_policy,
        "target_rate_kbps": str(transfer.target_rate_kbps),  # typed string in transferResponseSpec
        "cipher": spec.cipher,
        "overwrite": spec.overwrite,
        "resume_policy": spec.resume_policy,
        "create_dir": spec.create_dir,
        "precalculate_job_size": spec.precalculate_job_size,
    }
    optional = {
        "title": spec.title,
        "tags": transfer.tags,
        "cookie": spec.cookie,
        "remote_access_key": spec.remote_access_key,
    }
    echo.update({key: value for key, value in optional.items() if value is not None})
    echo.update({key: body[key] for key in _ECHOED if body.get(key) is not None})
    return echo


def shape_page(
    faults: FaultRegistry,
    store: TransferStore,
    after: int | None,
    found: list[Transfer],
    next_token: int,
    count: int,
    accept: Callable[[Transfer], bool],
) -> tuple[list[Transfer], int]:
    """Apply the short_page and repeat_change faults to a feed page (each fires only if it acts)."""
    shortened = faults.take(
        "short_page", lambda s: isinstance(s, ShortPage) and len(found) > s.size
    )
    if isinstance(shortened, ShortPage):
        count = shortened.size
        found = found[:count]
    previous = store.latest_change_at(after) if after is not None else None
    if previous is not None and not accept(previous):
        previous = None

    def repeats(fault: FaultSpec) -> bool:
        if not isinstance(fault, RepeatChange):
            return False
        if fault.where == "previous_page":
            return previous is not None
        return bool(found) and count >= 2

    repeat = faults.take("repeat_change", repeats)
    if isinstance(repeat, RepeatChange) and repeat.where == "previous_page":
        assert previous is not None
        found = [previous, *found][:count]
    elif isinstance(repeat, RepeatChange):
        found = [*found[: count - 1], found[0]]
    if shortened is not None or repeat is not None:
        next_token = max((t.last_seq or 0 for t in found), default=next_token)
    return found, next_token
