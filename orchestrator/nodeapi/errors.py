"""Turn httpx failures and Node API error answers into orchestrator.errors types."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import httpx

from orchestrator.errors import (
    ActivityLoggingDisabled,
    InvalidIterationToken,
    NodeAuthError,
    NodeError,
    NodeNotFound,
    NodeOutcomeUnknown,
    NodeProtocolError,
    NodeRequestRejected,
    NodeServerError,
    NodeUnreachable,
)
from orchestrator.nodeapi.wire import WireErrorDetail

# Timeouts and resets after the request left may mean the node acted: callers of non-idempotent
# calls (POST /ops/transfers) must look before they post again (DESIGN.md rule 2).
_NO_EFFECT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


def transport_error(exc: httpx.HTTPError, *, node: str, operation: str) -> NodeError:
    """The orchestrator error for an httpx exception (no response was read)."""
    kind = type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return NodeUnreachable(
            "the node's TLS certificate is not trusted: give the node a CA bundle "
            "(or, for a test node only, turn verification off for it)",
            node=node,
            operation=operation,
            retryable=False,
        )
    if isinstance(exc, _NO_EFFECT):
        return NodeUnreachable(f"cannot reach the node ({kind})", node=node, operation=operation)
    return NodeOutcomeUnknown(
        f"no complete answer ({kind}); the request may have taken effect",
        node=node,
        operation=operation,
    )


def error_detail(body: Any) -> WireErrorDetail | None:
    """The error object of a body (``{"error": {...}}``), if it has one."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return WireErrorDetail.model_validate(body["error"])
    return None


def parse_body(response: httpx.Response) -> Any:
    """The body as JSON whatever the declared content type; None for an empty body."""
    text = response.text
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return _NotJson(text[:200])


class _NotJson:
    """Marker for a body that is not JSON (kept short for messages)."""

    def __init__(self, excerpt: str) -> None:
        self.excerpt = excerpt


def raise_for_answer(response: httpx.Response, body: Any, *, node: str, operation: str) -> None:
    """Raise the matching NodeError when the status or the body says the call failed."""
    detail = error_detail(body)
    if response.is_success and detail is None:
        if isinstance(body, _NotJson):
            raise NodeProtocolError(
                f"the answer is not JSON: {body.excerpt!r}", node=node, operation=operation
            )
        return
    _raise_error(response.status_code, detail, node=node, operation=operation)


def _raise_error(
    status: int, detail: WireErrorDetail | None, *, node: str, operation: str
) -> NoReturn:
    text = detail.text() if detail else ""
    code = detail.code if detail and detail.code else None
    reason = detail.reason if detail else None
    message = text or f"HTTP {status} with no error text"
    kwargs: dict[str, Any] = {
        "node": node,
        "operation": operation,
        "status": status,
        "code": code,
        "reason": reason,
    }
    lowered = text.lower()
    if "iteration_token" in lowered or "iteration token" in lowered:
        raise InvalidIterationToken(message, **kwargs)
    if status in (401, 403):
        raise NodeAuthError(message, **kwargs)
    if status == 404:
        if "activity logging" in lowered:
            raise ActivityLoggingDisabled(message, **kwargs)
        raise NodeNotFound(message, **kwargs)
    if status >= 500:
        raise NodeServerError(message, **kwargs)
    if 400 <= status < 500:
        raise NodeRequestRejected(message, retryable=status in (408, 429), **kwargs)
    # A 2xx (or odd 1xx/3xx) carrying an error object: trust the body (node-api.md §1.3).
    raise NodeRequestRejected(message, **kwargs)
