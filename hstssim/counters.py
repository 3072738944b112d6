"""Request and data counters of one node, read by benchmarks through the admin API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    """Node API requests per "METHOD /route/template", plus data-plane totals."""

    requests: Counter[str] = field(default_factory=Counter)
    transfers_created: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    files_written: int = 0

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as the admin API shows them."""
        return {
            "requests": dict(sorted(self.requests.items())),
            "transfers_created": self.transfers_created,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "files_written": self.files_written,
        }

    def reset(self) -> None:
        """Set every counter back to zero."""
        self.requests.clear()
        self.transfers_created = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.files_written = 0
