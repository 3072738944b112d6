"""Transfer paths: normalised POSIX paths confined to a node's configured root."""

from __future__ import annotations

import posixpath

from orchestrator.domain.text import unreadable_character

MAX_PATH_LENGTH = 1024


class UnsafePath(ValueError):
    """A path that could escape its root or carries characters a node path must not have."""


def clean_relative(path: str) -> str:
    """A relative path with no '..', backslash, control, invisible-format or bidi character
    (a right-to-left override or a line separator shows a path other than the one stored),
    at most MAX_PATH_LENGTH characters long; '' for the root."""
    if len(path) > MAX_PATH_LENGTH:
        raise UnsafePath(f"a path has {MAX_PATH_LENGTH} characters at most")
    found = "U+005C" if "\\" in path else unreadable_character(path)
    if found is not None:
        raise UnsafePath(
            f"control, bidirectional and invisible characters and backslashes are not allowed "
            f"in paths ({found})"
        )
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath("'..' is not allowed in paths")
    return "/".join(parts)


def normalise_root(root: str) -> str:
    """A node root as an absolute POSIX path without a trailing slash ('/' for the docroot)."""
    cleaned = clean_relative(root)
    return "/" + cleaned if cleaned else "/"


def confine(root: str, path: str) -> str:
    """The absolute path (within the node's docroot) of ``path`` under ``root``.

    ``path`` is read relative to ``root`` whether or not it starts with '/'.
    """
    base = normalise_root(root)
    inner = clean_relative(path)
    joined = posixpath.join(base, inner) if inner else base
    if not (joined == base or joined.startswith(base.rstrip("/") + "/")):
        raise UnsafePath("the path leaves the node's root")
    return joined
