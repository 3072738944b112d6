"""Engine and session factory for SQLite (WAL, foreign keys) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.db.bulk import BinaryArray


def make_engine(url: str, *, pre_ping: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys.

    Server databases check a pooled connection before use unless ``pre_ping`` is off; then
    connections are recycled after half an hour instead.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", pre_ping)
    if not pre_ping:
        kwargs.setdefault("pool_recycle", 1800)
    engine = create_engine(url, **kwargs)
    if parsed.get_driver_name() == "psycopg":
        event.listen(engine, "connect", _binary_arrays)
    return engine


def _binary_arrays(dbapi_connection: Any, _record: Any) -> None:
    # psycopg dumps a list as a text array by default, scanning every element for quoting;
    # the binary form of the bulk statements' arrays costs about a quarter of that.
    from psycopg.types.array import ListBinaryDumper

    dbapi_connection.adapters.register_dumper(BinaryArray, ListBinaryDumper)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE/DELETE result (the typed Result hides the attribute)."""
    count: int = result.rowcount
    return count


def upsert(session: Session) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_…``) for this session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert
