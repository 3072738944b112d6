"""The sending side's plan: which files and directories a session moves, and where they go."""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hstssim import errors_table as codes
from hstssim import paths
from hstssim.errors_table import SessionFailure
from hstssim.model import Precalc
from hstssim.spec import PathPair

SAMPLE_BLOCK = 4096


@dataclass(frozen=True)
class Item:
    """One directory or file to send; target is its path below the destination root."""

    kind: str
    local: Path
    target: str
    size: int = 0
    mtime: float = 0.0


def _file_item(local: Path, target: str, docroot: Path) -> Item:
    """Return the item of one regular file, refusing links that leave the docroot."""
    if paths.resolve(docroot, os.path.relpath(local, docroot)) is None:
        raise SessionFailure(codes.BAD_PATH)
    if not local.is_file():
        raise SessionFailure(codes.NOT_REGULAR)
    stat = local.stat()
    return Item("file", local, target, stat.st_size, stat.st_mtime)


def _walk(root: Path, target: str, docroot: Path) -> list[Item]:
    """Return a directory and everything under it, parents before children, sorted by name."""
    items = [Item("dir", root, target)]
    for current, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(current, root)
        base = target if rel == "." else posixpath.join(target, Path(rel).as_posix())
        for name in dirs:
            items.append(Item("dir", Path(current, name), posixpath.join(base, name)))
        for name in sorted(files):
            items.append(_file_item(Path(current, name), posixpath.join(base, name), docroot))
    return items


def plan(docroot: Path, source_root: str, pairs: Iterable[PathPair]) -> list[Item]:
    """Resolve each source under the docroot; raise SessionFailure 41 (escape) or 4 (missing)."""
    items: list[Item] = []
    for pair in pairs:
        rel = paths.join(source_root, pair.source)
        local = None if rel is None else paths.resolve(docroot, rel)
        if rel is None or local is None:
            raise SessionFailure(codes.BAD_PATH)
        if not local.exists():
            raise SessionFailure(codes.NO_SUCH_FILE)
        target = pair.destination or posixpath.basename(rel)
        if local.is_dir():
            items.extend(_walk(local, target, docroot))
        else:
            items.append(_file_item(local, target, docroot))
    return items


def precalc_of(items: Iterable[Item]) -> Precalc:
    """Return the job size of a plan."""
    result = Precalc()
    for item in items:
        if item.kind == "dir":
            result.directories_expected += 1
        else:
            result.files_expected += 1
            result.bytes_expected += item.size
    return result


def digest(path: Path, length: int, mode: str) -> str:
    """Checksum a file's first length bytes: all of them ("full") or three blocks ("sparse")."""
    hasher = hashlib.sha256(str(length).encode())
    with path.open("rb") as handle:
        if mode == "full":
            remaining = length
            while remaining > 0:
                block = handle.read(min(1024 * 1024, remaining))
                if not block:
                    break
                hasher.update(block)
                remaining -= len(block)
        else:
            for offset in sorted({0, length // 2, max(0, length - SAMPLE_BLOCK)}):
                handle.seek(offset)
                hasher.update(handle.read(max(0, min(SAMPLE_BLOCK, length - offset))))
    return hasher.hexdigest()
