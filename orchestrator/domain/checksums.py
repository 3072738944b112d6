"""File checksums: the algorithms a job may ask for, and what a set of reports says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator

from orchestrator.domain.transfers import TransferFile

# The spellings the Node API takes for file_checksum (node-api.md §3.2, OAS446 enum).
ChecksumAlgorithm = Literal["md5", "sha1", "sha-256", "sha-384", "sha-512"]
ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha-256", "sha-384", "sha-512")
# What people type (and hashlib calls them): sha256 is the Node API's sha-256.
_ALIASES = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512", "sha-1": "sha1"}
NO_CHECKSUM = "none"


def wire_algorithm(value: object) -> object:
    """The Node API spelling of an algorithm name (sha256 → sha-256); others pass unchanged."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        return _ALIASES.get(lowered, lowered)
    return value


# An algorithm as a job takes it: any case, with or without the hyphen.
Algorithm = Annotated[ChecksumAlgorithm, BeforeValidator(wire_algorithm)]


def has_checksum(checksum_type: str | None, checksum: str | None) -> bool:
    """Whether a node's file report carries a checksum ("none" or empty means it does not)."""
    return bool(checksum) and (checksum_type or NO_CHECKSUM).lower() != NO_CHECKSUM


@dataclass(frozen=True)
class Disagreement:
    """One file whose checksum is not the same at every destination."""

    path: str
    checksums: dict[str, str | None]  # destination → its checksum (None: it reported none)

    def __str__(self) -> str:
        missing = sorted(d for d, c in self.checksums.items() if c is None)
        if missing:
            return f"{self.path}: no checksum from {', '.join(missing)}"
        return f"{self.path}: checksums differ across {', '.join(sorted(self.checksums))}"


def checksum_disagreements(
    per_destination: Mapping[str, Mapping[str, str | None]],
) -> list[Disagreement]:
    """Files whose checksums differ across destinations, or that one destination lacks a
    checksum for (or lacks altogether), sorted by path; empty when every destination agrees.

    ``per_destination`` maps a destination's name to its files: path → checksum (None or
    "" when the node reported none). Checksums are compared case-insensitively (hex).
    """
    paths = sorted({path for files in per_destination.values() for path in files})
    found = []
    for path in paths:
        seen = {
            destination: (files.get(path) or None) for destination, files in per_destination.items()
        }
        values = {c.lower() if c else None for c in seen.values()}
        if None in values or len(values) > 1:
            found.append(Disagreement(path, dict(sorted(seen.items()))))
    return found


def unchecked_files(files: Sequence[TransferFile]) -> list[str]:
    """Paths of the completed files a node reported without a checksum, in its order.

    A file of which the node wrote no bytes was left alone by the overwrite policy (already
    at the destination) or is empty: nothing was moved, so no checksum is missing. (The
    reference is silent on what a node reports for those; this is the tolerant reading.)
    """
    return [
        f.path
        for f in files
        if f.status == "completed"
        and f.bytes_written > 0
        and not has_checksum(f.checksum_type, f.checksum)
    ]
