"""Sizes, rates, file counts and times as people read them: the wording every screen shares.

Sizes are decimal bytes (1 KB = 1000 B); rates are bits per second (Mbps), as Aspera's own
tools and admins state them; times are UTC, said so.
"""

from __future__ import annotations

from datetime import UTC, datetime

SIZE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")
RATE_UNITS = ("bps", "kbps", "Mbps", "Gbps", "Tbps")


def _scaled(value: float, units: tuple[str, ...]) -> str:
    """``value`` in the largest unit (steps of 1000) that keeps it under 1000."""
    for unit in units:  # the unit the loop stops at is the one to print
        if abs(value) < 1000 or unit == units[-1]:
            break
        value /= 1000
    if unit == units[0]:
        return f"{value:.0f} {unit}"
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {unit}"


def size(count: float | None, *, missing: str = "—") -> str:
    """Bytes in decimal units: 1_500_000 -> '1.50 MB'; ``missing`` when unknown."""
    return missing if count is None else _scaled(float(count), SIZE_UNITS)


def bitrate(kbps: float | None, *, missing: str = "—") -> str:
    """A rate given in kilobits per second: 12_500 -> '12.5 Mbps'; ``missing`` when idle."""
    return _scaled(kbps * 1000, RATE_UNITS) if kbps else missing


def kbps_of(bytes_per_second: float | None) -> float | None:
    """Kilobits per second from bytes per second (the inverse of ``bytes_per_second``)."""
    return None if bytes_per_second is None else bytes_per_second * 8 / 1000


def files(count: int) -> str:
    """'1 file', '6 files'."""
    return f"{count} file" if count == 1 else f"{count} files"


def up_to_date(skipped: int) -> str:
    """What a job that had nothing to move says: 'up to date (6 files already there)'."""
    return f"up to date ({files(skipped)} already there)"


def moved(files_moved: int, bytes_moved: int, skipped: int) -> str:
    """What a finished transfer moved: '3 files, 1.50 MB moved, 2 already there'."""
    if files_moved == 0 and bytes_moved == 0:
        return up_to_date(skipped) if skipped else "nothing to move"
    text = f"{files(files_moved)}, {size(bytes_moved)} moved"
    return text + (f", {skipped} already there" if skipped else "")


def moment(at: datetime | None, *, missing: str = "") -> str:
    """A point in time in UTC, to the second: '2026-11-23 11:22:13 UTC'."""
    if at is None:
        return missing
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # ours are UTC
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
