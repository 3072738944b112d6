"""File checksums a transfer reports when its spec asks (``file_checksum``, OAS446)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

# The spellings OAS446 allows for transferPostRequest.file_checksum, and hashlib's name of each.
ALGORITHMS = {
    "md5": "md5",
    "sha1": "sha1",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}
NONE = "none"
CHOICES = (NONE, *ALGORITHMS)
_BLOCK = 1024 * 1024


class Hasher(Protocol):
    """What hashlib's objects offer (their class is private)."""

    def update(self, data: bytes, /) -> None:
        """Add bytes."""

    def hexdigest(self) -> str:
        """The digest so far, in hex."""


def new_hasher(algorithm: str | None) -> Hasher | None:
    """A fresh hasher for a spec's algorithm, or None when no checksum is asked."""
    name = ALGORITHMS.get(algorithm or NONE)
    return None if name is None else hashlib.new(name)


def hash_prefix(hasher: Any, path: Path, length: int) -> None:
    """Feed a file's first ``length`` bytes (what a resumed file already holds) to the hasher."""
    with path.open("rb") as handle:
        remaining = length
        while remaining > 0:
            block = handle.read(min(_BLOCK, remaining))
            if not block:
                break
            hasher.update(block)
            remaining -= len(block)
