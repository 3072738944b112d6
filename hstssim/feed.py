"""Query filters of GET /ops/transfers: active_only, direction, tag, after_time, access_key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hstssim import model
from hstssim.model import Transfer


class FilterError(ValueError):
    """A query parameter cannot be understood."""


@dataclass(frozen=True)
class TagFilter:
    """Dotted tag paths that must all exist, and optionally all equal value."""

    keys: tuple[tuple[str, ...], ...]
    value: str | None

    @classmethod
    def parse(cls, text: str) -> TagFilter:
        """Parse "a.b[,c.d]" or "a.b[,c.d]=value" (the "=" arrives URL-decoded)."""
        names, has_value, value = text.partition("=")
        keys = tuple(tuple(name.split(".")) for name in names.split(",") if name)
        if not keys or any("" in key for key in keys):
            raise FilterError("Invalid tag filter")
        return cls(keys, value if has_value else None)

    def matches(self, tags: dict[str, Any] | None) -> bool:
        """Tell whether the tags have every key (with the value, when one is given)."""
        for key in self.keys:
            node: Any = tags
            for part in key:
                if not isinstance(node, dict) or part not in node:
                    return False
                node = node[part]
            if self.value is not None and _as_text(node) != self.value:
                return False
        return True


def _as_text(value: Any) -> str:
    """Render a tag value the way it compares with a query string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_time(text: str) -> float:
    """Parse an ISO time such as 2022-11-30T15:00:00Z into epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError("Invalid after_time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_bool(text: str, name: str) -> bool:
    """Parse a boolean query parameter."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise FilterError(f"Invalid {name}")


def build(
    active_only: bool | None = None,
    direction: str | None = None,
    tag: TagFilter | None = None,
    after_time: float | None = None,
    access_key: str | None = None,
) -> Callable[[Transfer], bool]:
    """Return a predicate that accepts the transfers the query asks for."""
    # active_only=true keeps waiting and running (OAS446: "running transfers (waiting or
    # running)"); false keeps every other status ("transfers that are not running").

    def accept(transfer: Transfer) -> bool:
        if active_only is not None and (transfer.status in model.ACTIVE) != active_only:
            return False
        if direction is not None and transfer.spec.direction != direction:
            return False
        if tag is not None and not tag.matches(transfer.tags):
            return False
        if after_time is not None and transfer.last_change < after_time:
            return False
        return access_key is None or TagFilter(
            (("aspera", "node", "access_key"),), access_key
        ).matches(transfer.tags)

    return accept
