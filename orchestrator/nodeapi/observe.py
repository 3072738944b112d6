"""What a NodeClient tells an injected observer about each request it made."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import NodeError


@dataclass(frozen=True, slots=True)
class NodeCall:
    """One request to a node: its route template (never ids or a query), answer and time."""

    node: str
    method: str
    route: str
    status: int | None  # None: no answer came (connection refused, timeout)
    seconds: float
    error: str | None  # the kind of NodeError it raised (error_kind), None on success


CallObserver = Callable[[NodeCall], None]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def error_kind(exc: NodeError) -> str:
    """A NodeError's class as a label value: NodeServerError -> "server_error"."""
    name = type(exc).__name__.removeprefix("Node")
    return _CAMEL.sub("_", name).lower()
