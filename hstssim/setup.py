"""POST /files/upload_setup and /files/download_setup: one token-bearing spec per request."""

from __future__ import annotations

import posixpath
from typing import Any

from hstssim import paths
from hstssim.context import NodeContext
from hstssim.spec import DEFAULT_PORT, SpecError, as_int

DIRECTION = {"upload": "send", "download": "receive"}


class ItemError(Exception):
    """One transfer_request cannot be honoured; body is its error object."""

    def __init__(self, code: int, reason: str, user_message: str) -> None:
        super().__init__(user_message)
        self.body = {"code": code, "reason": reason, "user_message": user_message}


def _bad_request(message: str) -> ItemError:
    """Return a 400 item error."""
    return ItemError(400, "Bad Request", message)


def _outside(path: str) -> ItemError:
    """Return the item error of a path that leaves the docroot."""
    return ItemError(403, "Forbidden", f"Path outside the docroot: {path}")


def _path_list(request: dict[str, Any], key: str) -> list[str]:
    """Return the non-empty string values of paths[].key."""
    raw = request.get("paths", [])
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise _bad_request("paths must be an array of objects")
    values = [p.get(key) for p in raw]
    if any(v is not None and not isinstance(v, str) for v in values):
        raise _bad_request(f"paths {key} must be a string")
    return [v for v in values if v]


def _under(root: str, entries: list[str]) -> list[str]:
    """Normalise entries below root; "*" and "." mean the root itself."""
    result = []
    for entry in entries:
        joined = paths.join(root, "" if entry in ("*", ".") else entry)
        if joined is None:
            raise _outside(entry)
        result.append(joined)
    return result


def _optional_str(request: dict[str, Any], key: str) -> str | None:
    """Return an optional string member of the request."""
    value = request.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad_request(f"{key} must be a string")
    return value


def _upload_scope(request: dict[str, Any]) -> tuple[str, list[str]]:
    """Return the destination_root to answer and the prefixes the token binds."""
    given_root = _optional_str(request, "destination_root")
    root = paths.normalize(given_root or "")
    if root is None:
        raise _outside(str(given_root))
    destinations = _under(root, _path_list(request, "destination"))
    if given_root is not None:
        return given_root, [root]
    if not destinations:
        raise _bad_request("destination_root or at least one paths destination is required")
    common = posixpath.commonpath(["/" + d for d in destinations])
    first = _path_list(request, "destination")[0]
    shown = first if len(destinations) == 1 and first not in ("*", ".") else common
    return shown, [common.lstrip("/")]


def _download_scope(request: dict[str, Any]) -> tuple[str, list[str]]:
    """Return the source_root to answer and the source paths the token binds."""
    given_root = _optional_str(request, "source_root")
    root = paths.normalize(given_root or "")
    if root is None:
        raise _outside(str(given_root))
    given_sources = _path_list(request, "source")
    if given_root is None and not given_sources:
        raise _bad_request("source_root or at least one paths source is required")
    return given_root or "", _under(root, given_sources) or [root]


def build_spec(ctx: NodeContext, kind: str, request: Any) -> dict[str, Any]:
    """Return the transfer_spec answering one transfer_request, or raise ItemError."""
    if not isinstance(request, dict):
        raise _bad_request("transfer_request must be an object")
    config = ctx.config
    direction = DIRECTION[kind]
    try:
        life = as_int(request.get("token_life_seconds", config.token_life_seconds), "life")
        rate = as_int(
            request.get("target_rate_kbps", config.default_target_rate_kbps), "target_rate_kbps"
        )
        min_rate = as_int(request.get("min_rate_kbps", 0), "min_rate_kbps")
    except SpecError as exc:
        raise _bad_request(str(exc)) from exc
    tags = request.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise _bad_request("tags must be an object")
    if direction == "send":
        destination_root, scope = _upload_scope(request)
        source_root = _optional_str(request, "source_root") or ""
        token = ctx.tokens.issue(config.transfer_user, direction, scope, [], life)
    else:
        source_root, scope = _download_scope(request)
        destination_root = ""
        token = ctx.tokens.issue(config.transfer_user, direction, [], scope, life)
    return {
        "paths": request.get("paths") or [{}],
        "source_root": source_root,
        "destination_root": destination_root,
        "token": token,
        "direction": direction,
        "cipher": _optional_str(request, "cipher") or "aes-128",
        "tags": tags,
        "rate_policy_allowed": "fixed",
        "rate_policy": _optional_str(request, "rate_policy") or "fair",
        "target_rate_kbps": rate,
        "min_rate_kbps": min_rate,
        "remote_host": _optional_str(request, "remote_host")
        or config.advertise_host
        or config.host,
        "remote_user": config.transfer_user,
        "sshfp": None,
        "ssh_port": DEFAULT_PORT,
        "fasp_port": config.fasp_port,
        "http_fallback": False,
        "https_fallback_port": 8443,
    }


def answer(ctx: NodeContext, kind: str, requests: list[Any]) -> dict[str, Any]:
    """Return the transfer_specs body: a spec or an error in place, one per request."""
    specs: list[dict[str, Any]] = []
    for item in requests:
        request = item.get("transfer_request") if isinstance(item, dict) else None
        try:
            specs.append({"transfer_spec": build_spec(ctx, kind, request)})
        except ItemError as exc:
            specs.append({"error": exc.body})
    return {"transfer_specs": specs}
