"""What every service call receives: sessions, node clients, settings, a clock, and enqueue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.services import alerts
from orchestrator.services.registry import NodeClients
from orchestrator.settings import Settings

Enqueue = Callable[..., None]


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def no_enqueue(task: str, *args: object, **options: object) -> None:
    """An enqueue that sends nothing (tests that drive services one call at a time)."""


@dataclass
class ServiceContext:
    """The collaborators of the services; built once per process by an entry point."""

    sessions: sessionmaker[Session]
    clients: NodeClients
    settings: Settings
    enqueue: Enqueue = no_enqueue
    clock: Callable[[], datetime] = field(default=utcnow)

    def __post_init__(self) -> None:
        # Sessions carry the alert rules, so a job's end queues its alerts in its own commit.
        alerts.attach(self.sessions, self.settings, self.enqueue)

    def now(self) -> datetime:
        """The current time from the injected clock."""
        return self.clock()
