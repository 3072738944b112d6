"""The file-by-file protocol spoken after the handshake, by whichever side sends the files."""

# Sender -> receiver: {"op":"dir","path"}, {"op":"file","path","size","mtime"}, data frames,
# {"op":"eof"}, {"op":"digest","value"} and finally {"op":"done"}.
# Receiver -> sender: {"op":"ok"} (directory made), {"op":"verify","length","mode"} (send me
# the checksum of your first length bytes), {"op":"accept","offset"} or {"op":"skip"} (the
# overwrite policy said no), {"op":"stored"} (file renamed into place), {"op":"bye"} (after
# done), and {"op":"error","error_code","error_desc"} which ends the session.
# Paths are relative to the receiver's destination root. Files are written to "<name>.partial"
# and renamed once complete, so a broken session leaves a partial file a later session resumes.

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import Any, Protocol

from hstssim import checksums, paths
from hstssim import errors_table as codes
from hstssim.checksums import Hasher
from hstssim.errors_table import SessionFailure
from hstssim.pacing import Pacer
from hstssim.sources import Item, digest
from hstssim.wire import DATA, Link, LinkClosed, decode

_DIGEST_MODES = {"sparse_csum": "sparse", "full_csum": "full"}


class Progress(Protocol):
    """Receives what a session moves, as it moves."""

    def file_started(self, target: str, size: int, offset: int) -> None:
        """A file starts (or resumes at offset)."""

    def file_data(self, target: str, nbytes: int) -> None:
        """Bytes of a file went over the wire."""

    def file_done(self, target: str, checksum: str | None = None) -> None:
        """A file is complete at the destination (with its checksum, when one was asked)."""

    def file_skipped(self, target: str, size: int) -> None:
        """The overwrite policy left a file alone."""

    def dir_done(self, target: str) -> None:
        """A directory exists at the destination."""


class NullProgress:
    """Progress that nobody watches (the server side of a session)."""

    def file_started(self, target: str, size: int, offset: int) -> None:
        """Ignore."""

    def file_data(self, target: str, nbytes: int) -> None:
        """Ignore."""

    def file_done(self, target: str, checksum: str | None = None) -> None:
        """Ignore."""

    def file_skipped(self, target: str, size: int) -> None:
        """Ignore."""

    def dir_done(self, target: str) -> None:
        """Ignore."""


async def _reply(link: Link) -> dict[str, Any]:
    """Return the peer's next control message; an error message ends the session."""
    message = await link.recv_json()
    if message.get("op") == "error":
        raise SessionFailure(
            int(message.get("error_code", codes.FASP_PROTO)), message.get("error_desc")
        )
    return message


async def _expect(link: Link, op: str) -> dict[str, Any]:
    """Return the next control message, which must be op."""
    message = await _reply(link)
    if message.get("op") != op:
        raise SessionFailure(
            codes.FASP_PROTO, f"protocol error: expected {op}, got {message.get('op')}"
        )
    return message


async def send_items(
    link: Link, items: list[Item], pacer: Pacer, progress: Progress, file_checksum: str = "none"
) -> None:
    """Send every item of the plan, then end the session politely; with ``file_checksum`` each
    file's checksum is computed over the bytes sent (and, on a resume, the bytes already there)."""
    for item in items:
        if item.kind == "dir":
            await link.send_json({"op": "dir", "path": item.target})
            await _expect(link, "ok")
            progress.dir_done(item.target)
        else:
            await _send_file(link, item, pacer, progress, file_checksum)
    await link.send_json({"op": "done"})
    await _expect(link, "bye")


async def _send_file(
    link: Link, item: Item, pacer: Pacer, progress: Progress, file_checksum: str
) -> None:
    """Announce one file, answer the receiver's checks, and stream it from the agreed offset."""
    await link.send_json(
        {"op": "file", "path": item.target, "size": item.size, "mtime": item.mtime}
    )
    while True:
        reply = await _reply(link)
        if reply.get("op") == "verify":
            value = await _digest(item.local, int(reply["length"]), str(reply["mode"]))
            await link.send_json({"op": "digest", "value": value})
        elif reply.get("op") == "skip":
            progress.file_skipped(item.target, item.size)
            return
        elif reply.get("op") == "accept":
            break
        else:
            raise SessionFailure(codes.FASP_PROTO, f"protocol error: unexpected {reply.get('op')}")
    offset = int(reply["offset"])
    progress.file_started(item.target, item.size, offset)
    hasher = await _hasher_after(file_checksum, item.local, offset, codes.DISK_READ)
    try:
        handle = item.local.open("rb")
    except OSError as exc:
        raise SessionFailure(codes.DISK_READ) from exc
    eof = {"op": "eof"}
    with handle:
        if offset:
            handle.seek(offset)
        remaining = item.size - offset
        while remaining > 0:
            size = min(pacer.chunk_size, remaining)
            await pacer.wait(size)
            chunk = handle.read(size)
            if not chunk:
                raise SessionFailure(codes.DISK_READ)
            last = len(chunk) == remaining
            try:
                await link.send_data(chunk, eof if last else None)
            except LinkClosed as exc:
                progress.file_data(item.target, exc.delivered)
                raise
            remaining -= len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            progress.file_data(item.target, len(chunk))
            if last:
                eof = {}
    if eof:  # an empty file, or the last chunk did not carry it
        await link.send_json(eof)
    await _expect(link, "stored")
    progress.file_done(item.target, None if hasher is None else hasher.hexdigest())


async def _hasher_after(algorithm: str, path: Path, offset: int, code: int) -> Hasher | None:
    """A hasher for the algorithm (None if none asked), fed the file's first offset bytes."""
    hasher = checksums.new_hasher(algorithm)
    if hasher is not None and offset > 0:
        try:
            await asyncio.to_thread(checksums.hash_prefix, hasher, path, offset)
        except OSError as exc:
            raise SessionFailure(code) from exc
    return hasher


async def _digest(path: Path, length: int, mode: str) -> str:
    """Checksum a file prefix off the event loop ("" if it cannot be read)."""
    try:
        return await asyncio.to_thread(digest, path, length, mode)
    except OSError:
        return ""


@dataclass(frozen=True)
class ReceivePolicy:
    """Where and how the receiving side writes, and which prefixes its authorisation allows."""

    docroot: Path
    destination_root: str
    allowed: tuple[str, ...]
    overwrite: str
    resume_policy: str
    on_file_written: Callable[[], None]
    file_checksum: str = "none"


class _Receiver:
    """Writes what a sender streams, one message at a time."""

    def __init__(self, link: Link, policy: ReceivePolicy, pacer: Pacer, progress: Progress):
        self.link = link
        self.policy = policy
        self.pacer = pacer
        self.progress = progress

    async def fail(self, code: int, desc: str | None = None) -> SessionFailure:
        """Tell the sender the session ends with code, and return the failure to raise."""
        failure = SessionFailure(code, desc)
        await self.link.send_json({"op": "error", "error_code": code, "error_desc": failure.desc})
        return failure

    async def target(self, path: Any) -> Path:
        """Resolve an announced path: escapes fail with 41, paths the token omits with 19."""
        full = paths.join(self.policy.destination_root, str(path))
        if full is None:
            raise await self.fail(codes.BAD_PATH)
        if not any(paths.within(full, prefix) for prefix in self.policy.allowed):
            raise await self.fail(codes.AUTH)
        local = paths.resolve(self.policy.docroot, full)
        if local is None:
            raise await self.fail(codes.BAD_PATH)
        return local

    async def directory(self, message: dict[str, Any]) -> None:
        """Create an announced directory."""
        local = await self.target(message.get("path", ""))
        if local.exists() and not local.is_dir():
            raise await self.fail(codes.NOT_DIR)
        try:
            local.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise await self.fail(codes.DISK_WRITE) from exc
        await self.link.send_json({"op": "ok"})
        self.progress.dir_done(str(message.get("path", "")))

    async def same_prefix(self, local: Path, length: int) -> bool:
        """Ask the sender for the checksum of its first length bytes and compare with ours."""
        mode = _DIGEST_MODES[self.policy.resume_policy]
        await self.link.send_json({"op": "verify", "length": length, "mode": mode})
        reply = await _expect(self.link, "digest")
        return bool(reply.get("value")) and reply.get("value") == await _digest(local, length, mode)

    async def should_write(self, local: Path, size: int, mtime: float) -> bool:
        """Apply the overwrite policy to a file that already exists."""
        policy = self.policy.overwrite
        if policy in ("never", "always"):
            return policy == "always"
        stat = local.stat()
        older = stat.st_mtime < mtime
        if policy == "older":
            return older
        different = stat.st_size != size
        if not different and self.policy.resume_policy in _DIGEST_MODES:
            different = not await self.same_prefix(local, size)
        return different and (older or policy == "diff")

    async def resume_offset(self, partial: Path, size: int) -> int:
        """Return where to resume a partial file (0: start over)."""
        if self.policy.resume_policy == "none" or not partial.is_file():
            return 0
        have = partial.stat().st_size
        if have == 0 or have > size:
            return 0
        if self.policy.resume_policy == "attrs":
            return have
        return have if await self.same_prefix(partial, have) else 0

    async def file(self, message: dict[str, Any]) -> None:
        """Receive one announced file into <name>.partial, then rename it into place."""
        target = str(message.get("path", ""))
        size, mtime = int(message.get("size", 0)), float(message.get("mtime", 0))
        local = await self.target(target)
        try:
            found: os.stat_result | None = local.stat()
        except OSError:
            found = None
        if found is not None and S_ISDIR(found.st_mode):
            raise await self.fail(codes.IS_DIR)
        if found is not None and not await self.should_write(local, size, mtime):
            await self.link.send_json({"op": "skip"})
            self.progress.file_skipped(target, size)
            return
        partial = paths.partial_name(local)
        try:
            if found is None and not local.parent.is_dir():
                local.parent.mkdir(parents=True, exist_ok=True)
            offset = await self.resume_offset(partial, size)
            handle = partial.open("r+b" if offset else "wb")
        except OSError as exc:
            raise await self.fail(codes.DISK_WRITE) from exc
        try:
            hasher = await _hasher_after(
                self.policy.file_checksum, partial, offset, codes.DISK_WRITE
            )
        except SessionFailure:
            handle.close()
            raise
        await self.link.send_json({"op": "accept", "offset": offset})
        self.progress.file_started(target, size, offset)
        with handle:
            if offset:  # "wb" has already emptied the file
                handle.seek(offset)
                handle.truncate()
            written = offset
            while True:
                kind, payload = await self.link.recv()
                if kind != DATA:
                    break
                handle.write(payload)
                written += len(payload)
                if hasher is not None:
                    hasher.update(payload)
                self.progress.file_data(target, len(payload))
                await self.pacer.wait(len(payload))
        end = decode(payload)
        if end.get("op") != "eof" or written != size:
            raise await self.fail(codes.FASP_PROTO, "protocol error: file size mismatch")
        try:
            os.replace(partial, local)
        except OSError as exc:
            raise await self.fail(codes.CANNOT_RENAME_PARTIAL_FILES) from exc
        self.policy.on_file_written()
        await self.link.send_json({"op": "stored"})
        self.progress.file_done(target, None if hasher is None else hasher.hexdigest())


async def receive_items(
    link: Link, policy: ReceivePolicy, pacer: Pacer, progress: Progress
) -> None:
    """Answer a sender until it says done; raise SessionFailure if the session must end."""
    receiver = _Receiver(link, policy, pacer, progress)
    while True:
        message = await link.recv_json()
        op = message.get("op")
        if op == "done":
            await link.send_json({"op": "bye"})
            return
        if op == "dir":
            await receiver.directory(message)
        elif op == "file":
            await receiver.file(message)
        else:
            raise await receiver.fail(codes.FASP_PROTO, f"protocol error: unexpected {op}")
