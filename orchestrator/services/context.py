"""What every service call receives (ServiceContext) and the transaction it works in (UnitOfWork).

Services open their unit of work and commit it themselves. What must happen with a commit is
said on the unit, where the reader sees it: ``before_commit`` (e.g. write the throughput
counted while applying a page) and ``after_commit`` (e.g. wake the alert sender).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.crypto import SecretBox
from orchestrator.nodeapi.client import NodeClient
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

Enqueue = Callable[..., None]


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def no_enqueue(task: str, *args: object, **options: object) -> None:
    """An enqueue that sends nothing (tests that drive services one call at a time)."""


class NodeClientPool(Protocol):
    """Hands out one client per registered node (``services.nodes.clients.NodeClients``)."""

    box: SecretBox  # encrypts node secrets at rest

    def get(self, node_id: int) -> NodeClient:
        """The client of a registered node."""
        ...

    def close(self) -> None:
        """Close every client."""
        ...


@dataclass
class ServiceContext:
    """The collaborators of the services; built once per process by ``orchestrator.bootstrap``."""

    sessions: sessionmaker[Session]
    clients: NodeClientPool
    settings: Settings
    enqueue: Enqueue = no_enqueue
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        """The current time from the injected clock."""
        return self.clock()

    @contextmanager
    def autocommit(self) -> Iterator[Session]:
        """A session whose statements each commit on their own: no BEGIN and no COMMIT or
        ROLLBACK round trip, for one read or one UPDATE … RETURNING that needs no
        transaction around it."""
        with self.sessions() as session:
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session

    @contextmanager
    def unit_of_work(self) -> Iterator[UnitOfWork]:
        """A session and its commit effects; what was not committed is dropped at the end."""
        with self.sessions() as session:
            work = UnitOfWork(self, session)
            try:
                yield work
            finally:
                work.discard()  # closing the session rolls back what it did not commit


class Accumulator(Protocol):
    """Something a unit collects while it works and writes just before it commits."""

    def write(self, session: Session) -> None:
        """Write what was collected (inside the transaction)."""


A = TypeVar("A", bound=Accumulator)


class UnitOfWork:
    """One transaction: its session, what to write before the commit, and what to do after."""

    def __init__(self, ctx: ServiceContext, session: Session) -> None:
        self.ctx = ctx
        self.session = session
        self._accumulators: dict[type[Accumulator], Accumulator] = {}
        self._after: dict[str, Callable[[], None]] = {}

    def accumulator(self, kind: type[A]) -> A:
        """This unit's ``kind``, made on first use; it is written just before the commit."""
        found = self._accumulators.get(kind)
        if found is None:
            found = self._accumulators[kind] = kind()
        return found  # type: ignore[return-value]

    def after_commit(self, key: str, action: Callable[[], None]) -> None:
        """Run ``action`` once the commit succeeded (one action per ``key``)."""
        self._after.setdefault(key, action)

    def commit(self) -> None:
        """Write the accumulators, commit, then run the after-commit actions."""
        for accumulator in self._accumulators.values():
            accumulator.write(self.session)
        self._accumulators.clear()
        self.session.commit()
        actions, self._after = list(self._after.values()), {}
        for action in actions:
            try:
                action()
            except Exception:  # the commit stands; the sweeper redoes what a wake-up missed
                log.exception("an after-commit action failed")

    def rollback(self) -> None:
        """Throw away the transaction and what it collected."""
        self.discard()
        self.session.rollback()

    def discard(self) -> None:
        """Forget what was collected for a commit that will not come."""
        self._accumulators.clear()
        self._after.clear()
