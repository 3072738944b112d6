"""Docroot confinement: node paths are relative to the docroot, and "/" is the docroot itself."""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path


def normalize(path: str) -> str | None:
    """Normalise a node path to "a/b" form ("" is the docroot); None when it climbs out."""
    # A leading "/" means the docroot, as on a real node: "/etc" is the docroot's "etc",
    # never the host's /etc. ".." may walk back up, but never above "/".
    if "\x00" in path:
        return None
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def join(*pieces: str) -> str | None:
    """Join node path pieces and normalise the result (None when it escapes)."""
    return normalize("/".join(piece for piece in pieces if piece))


def within(rel: str, prefix: str) -> bool:
    """Tell whether normalised path rel is prefix itself or below it."""
    return prefix == "" or rel == prefix or rel.startswith(prefix + "/")


def display(rel: str) -> str:
    """Return the path as a node shows it: absolute from the docroot."""
    return "/" + rel


def resolve(docroot: Path, rel: str) -> Path | None:
    """Return docroot/rel, or None when symbolic links lead it outside the docroot."""
    root = _real_root(str(docroot))
    candidate = Path(docroot, rel) if rel else Path(docroot)
    if _no_links_below(root, rel):
        return candidate
    real = os.path.realpath(candidate)
    if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
        return None
    return candidate


def resolve_str(docroot: Path, path: str) -> Path | None:
    """Normalise a node path and resolve it under the docroot (None when it escapes)."""
    rel = normalize(path)
    if rel is None:
        return None
    return resolve(docroot, rel)


def partial_name(path: Path) -> Path:
    """Return the name a file has while it is being written (Aspera's ".partial" suffix)."""
    return path.with_name(path.name + ".partial")


def _no_links_below(root: str, rel: str) -> bool:
    """Tell whether root/rel (root a real path, rel normalised) names no symbolic link on the
    way (then it is inside root): one lstat per component of rel, where realpath would check
    every component of the docroot too."""
    path = root
    for part in rel.split("/") if rel else ():
        if part in ("", ".", ".."):
            return False
        path = os.path.join(path, part)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return False
        except FileNotFoundError:
            return True  # the rest does not exist yet: nothing below can lead elsewhere
        except OSError:
            return False
    return True


@functools.lru_cache(maxsize=64)
def _real_root(docroot: str) -> str:
    """Return a docroot's real path (a node's docroot does not move while it runs)."""
    return os.path.realpath(docroot)
