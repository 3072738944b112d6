"""Turns what a session moves into the transfer's counters, files[] and change log."""

from __future__ import annotations

from collections.abc import Callable

from hstssim import model, paths, sources
from hstssim.model import FileRecord, SessionRecord, Transfer, now_usec


class SessionTracker:
    """Turns a session's progress into the transfer's counters and change log."""

    def __init__(
        self, transfer: Transfer, session: SessionRecord, on_change: Callable[[], None]
    ) -> None:
        self._on_change = on_change
        self._transfer = transfer
        self._session = session
        self._root = paths.normalize(transfer.spec.destination_root) or ""

    def _path(self, target: str) -> str:
        """Return the destination path the files[] entry shows."""
        return paths.display(paths.join(self._root, target) or target)

    def _changed(self) -> None:
        """Report a change (logged at most once per progress_log_interval)."""
        self._on_change()

    def done_before(self, item: sources.Item) -> bool:
        """Tell whether an earlier session already completed (or skipped) this file."""
        record = self._transfer.files.get(self._path(item.target))
        return item.kind == "file" and record is not None and record.status == model.COMPLETED

    def file_started(self, target: str, size: int, offset: int) -> None:
        """Start (or resume) a files[] entry."""
        path = self._path(target)
        record = self._transfer.files.get(path)
        if record is None:
            record = FileRecord(
                id=str(len(self._transfer.files) + 1),
                path=path,
                size=size,
                session_id=self._session.id,
                start_time_usec=now_usec(),
            )
            self._transfer.files[path] = record
        record.status = "transferring"
        record.session_id = self._session.id
        record.size = size
        record.start_byte = offset
        record.bytes_written = offset
        self._changed()

    def file_data(self, target: str, nbytes: int) -> None:
        """Count bytes moved."""
        self._session.bytes_transferred += nbytes
        self._session.bytes_written += nbytes
        record = self._transfer.files.get(self._path(target))
        if record is not None:
            record.bytes_written += nbytes
        self._changed()

    def file_done(self, target: str, checksum: str | None = None) -> None:
        """Mark a file completed, with the checksum of its bytes when the spec asked for one."""
        record = self._transfer.files.get(self._path(target))
        if record is not None:
            record.status = model.COMPLETED
            record.end_time_usec = now_usec()
            if checksum is not None:
                record.checksum_type = self._transfer.spec.file_checksum
                record.checksum = checksum
        self._session.files_completed += 1
        self._changed()

    def file_skipped(self, target: str, size: int) -> None:
        """Record a file the overwrite policy left alone."""
        path = self._path(target)
        stamp = now_usec()
        self._transfer.files[path] = FileRecord(
            id=str(len(self._transfer.files) + 1),
            path=path,
            size=size,
            session_id=self._session.id,
            start_time_usec=stamp,
            end_time_usec=stamp,
            status=model.COMPLETED,
            skipped=True,
        )
        self._session.files_skipped += 1
        self._changed()

    def dir_done(self, target: str) -> None:
        """Count a directory made at the destination."""
        path = self._path(target)
        if path not in self._transfer.directories:
            self._transfer.directories.add(path)
            self._session.directories_completed += 1
            self._changed()

    def fail_open_files(self, code: int, desc: str) -> None:
        """Mark files still in flight as failed when the session ends badly."""
        for record in self._transfer.files.values():
            if record.status == "transferring" and record.session_id == self._session.id:
                record.status = model.FAILED
                record.error_code = code
                record.error_desc = desc
                record.end_time_usec = now_usec()
                self._session.files_failed += 1
