"""POST /files/browse and /files/info: metadata of paths under the docroot."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hstssim import paths

PERMISSIONS = [{"name": "view"}, {"name": "edit"}, {"name": "delete"}]
SORTS = {
    "path": (lambda e: e["path"], False),
    "type": (lambda e: (e["type"], e["path"]), False),
    "size_a": (lambda e: e["size"], False),
    "size_d": (lambda e: e["size"], True),
    "mtime_a": (lambda e: e["mtime"], False),
    "mtime_d": (lambda e: e["mtime"], True),
}


class PathProblem(Exception):
    """A path cannot be shown; code/reason/user_message form its error object."""

    def __init__(self, code: int, reason: str, user_message: str) -> None:
        super().__init__(user_message)
        self.code = code
        self.reason = reason
        self.user_message = user_message

    @property
    def body(self) -> dict[str, Any]:
        """Return the error object."""
        return {"code": self.code, "reason": self.reason, "user_message": self.user_message}


def locate(docroot: Path, path: Any) -> tuple[str, Path]:
    """Return the normalised node path and the local path; raise PathProblem 403/404."""
    if not isinstance(path, str):
        raise PathProblem(400, "Bad Request", "path must be a string")
    rel = paths.normalize(path)
    local = None if rel is None else paths.resolve(docroot, rel)
    if rel is None or local is None:
        raise PathProblem(403, "Forbidden", "Path outside the docroot")
    if not os.path.lexists(local):
        raise PathProblem(404, "Not Found", "Path not found")
    return rel, local


def describe(rel: str, local: Path) -> dict[str, Any]:
    """Return the metadata entry of one path."""
    info = local.lstat()
    if stat.S_ISLNK(info.st_mode):
        kind = "symbolic_link"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    else:
        kind = "file"
    return {
        "path": paths.display(rel),
        "basename": rel.rsplit("/", 1)[-1] if rel else "",
        "type": kind,
        "size": 0 if kind == "directory" else info.st_size,
        "mtime": datetime.fromtimestamp(info.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "permissions": list(PERMISSIONS),
    }


def browse(docroot: Path, request: dict[str, Any]) -> dict[str, Any]:
    """List a directory (or describe a file) with skip/count paging and sorting."""
    rel, local = locate(docroot, request.get("path", "/"))
    count = request.get("count", 100)
    skip = request.get("skip", 0)
    sort = request.get("sort", "path")
    if not isinstance(count, int) or not isinstance(skip, int) or count < 0 or skip < 0:
        raise PathProblem(400, "Bad Request", "count and skip must be non-negative integers")
    if sort not in SORTS:
        raise PathProblem(400, "Bad Request", f"sort must be one of {', '.join(SORTS)}")
    entries: list[dict[str, Any]] = []
    if local.is_dir():
        for name in os.listdir(local):
            child = paths.join(rel, name)
            if child is not None:
                entries.append(describe(child, Path(local, name)))
    key, reverse = SORTS[sort]
    entries.sort(key=key, reverse=reverse)
    page = entries[skip : skip + count]
    return {
        "self": describe(rel, local),
        "items": page,
        "item_count": len(page),
        "total_count": len(entries),
    }


def info(docroot: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Describe each requested path, with a per-path error where it cannot be shown."""
    requested = request.get("paths")
    if not isinstance(requested, list) or not all(isinstance(p, dict) for p in requested):
        raise PathProblem(400, "Bad Request", "paths must be an array of {path} objects")
    answers: list[dict[str, Any]] = []
    for entry in requested:
        try:
            rel, local = locate(docroot, entry.get("path"))
            answers.append(describe(rel, local))
        except PathProblem as problem:
            answers.append({"path": entry.get("path"), "error": problem.body})
    return {"paths": answers}
