"""Destination leases: the paths a job writes on its destination node, and which of them
overlap, so two jobs never write one file at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

Segments = tuple[str, ...]


def _segments(path: str) -> Segments:
    """A stored (already confined) path as its segments, read the way ``paths.confine`` writes
    them: empty and '.' segments dropped, so '/in/', 'in' and '/./in' are one folder."""
    return tuple(part for part in path.split("/") if part not in ("", "."))


def written_paths(destination_path: str, source_paths: Iterable[str]) -> frozenset[str]:
    """The paths a job writes on its destination node: its folder joined with each source's last
    name, where the node places that source (the folder itself for a source naming the root)."""
    folder = _segments(destination_path)
    return frozenset("/" + "/".join((*folder, *_segments(source)[-1:])) for source in source_paths)


def overlaps(first: str, second: str) -> bool:
    """Whether two paths are equal or one lies under the other, by whole segments
    ('/in' overlaps '/in/a', not '/inbox')."""
    a, b = _segments(first), _segments(second)
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


@dataclass(frozen=True)
class Lease:
    """A job holding part of a destination: its id and the folder it writes to."""

    job_id: str
    destination_path: str


@dataclass
class DestinationLeases:
    """The leases held on each destination node, indexed so a look-up costs a path's depth."""

    _held: dict[tuple[int, Segments], Lease] = field(default_factory=dict)
    _above: dict[tuple[int, Segments], Lease] = field(default_factory=dict)  # strict ancestors

    def holder(self, node_id: int, paths: Iterable[str]) -> Lease | None:
        """A lease on ``node_id`` whose paths ``overlaps`` one of ``paths``, if any does."""
        for path in paths:
            parts = _segments(path)
            for depth in range(len(parts) + 1):  # the path and every folder above it
                if (found := self._held.get((node_id, parts[:depth]))) is not None:
                    return found
            if (found := self._above.get((node_id, parts))) is not None:  # a path below it
                return found
        return None

    def take(self, node_id: int, paths: Iterable[str], lease: Lease) -> None:
        """Record ``lease`` on ``paths`` (an earlier lease on the same path stays the one named)."""
        for path in paths:
            parts = _segments(path)
            self._held.setdefault((node_id, parts), lease)
            for depth in range(len(parts)):
                self._above.setdefault((node_id, parts[:depth]), lease)
