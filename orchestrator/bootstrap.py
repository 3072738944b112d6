"""The composition root: the one place that builds settings defaults, the database engine, the
secrets box, the broker connection, the node clients and the ServiceContext for every entry point
(API, CLI, workers). Entry points ask this module; nothing else constructs them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy.engine import make_url

from orchestrator.crypto import secret_box
from orchestrator.db.engine import make_engine, make_session_factory
from orchestrator.db.migrate import upgrade
from orchestrator.services.alerts.rules import load_alerts
from orchestrator.services.context import Enqueue, ServiceContext, no_enqueue
from orchestrator.services.nodes.calls import node_call_recorder
from orchestrator.services.nodes.clients import NodeClients
from orchestrator.settings import Settings
from orchestrator.taskqueue import Enqueuer, make_celery


def with_local_defaults(settings: Settings) -> Settings:
    """The settings with an absolute data_dir and the SQLite URL spelled out when unset.

    Child processes started from another directory then find the same files.
    """
    data_dir = settings.data_dir.expanduser().resolve()
    resolved = settings.model_copy(update={"data_dir": data_dir})
    return resolved.model_copy(update={"database_url": resolved.effective_database_url()})


def build_context(
    settings: Settings,
    *,
    enqueue: Enqueue | None = None,
    check_alerts: bool = True,
    pre_ping: bool = True,
) -> ServiceContext:
    """A ServiceContext over the configured database (secrets box from the settings).

    ``enqueue=None`` publishes to the configured broker; pass ``no_enqueue`` for a process
    that creates no work (the CLI registering nodes, issuing tokens). A missing or broken
    alerts file stops a process that moves jobs here, before it takes any work.
    ``pre_ping=False`` (workers) saves a round trip per checkout: a connection that died with
    a database restart fails its statement, and the task's retry takes a fresh one.
    """
    if check_alerts:
        load_alerts(settings.alerts_file)
    engine = make_engine(settings.effective_database_url(), pre_ping=pre_ping)
    sessions = make_session_factory(engine)
    box = secret_box(settings.secret_keys, settings.data_dir)
    return ServiceContext(
        sessions=sessions,
        clients=NodeClients(sessions, box, settings, observer=node_call_recorder(settings)),
        settings=settings,
        enqueue=enqueue if enqueue is not None else Enqueuer(make_celery(settings)),
    )


def quiet_context(settings: Settings) -> ServiceContext:
    """A ServiceContext that publishes nothing (commands that create no work)."""
    return build_context(settings, enqueue=no_enqueue)


@contextmanager
def opened(settings: Settings) -> Iterator[ServiceContext]:
    """A quiet context for one command that moves no job, disposed of at the end."""
    ctx = build_context(settings, enqueue=no_enqueue, check_alerts=False)
    try:
        yield ctx
    finally:
        dispose(ctx)


def dispose(ctx: ServiceContext) -> None:
    """Close the node clients and the database pool of a context."""
    ctx.clients.close()
    bind = ctx.sessions.kw.get("bind")
    if bind is not None:
        bind.dispose()


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def prepare_data_dir(settings: Settings) -> None:
    """Create the data dir, or narrow it, to its owner alone (0700): it holds the SQLite file,
    the key file and the embedded broker's password."""
    path = settings.data_dir
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _narrow(path, PRIVATE_DIR)


def _narrow(path: Path, mode: int) -> None:
    """Give ``path`` this mode if this process owns it (someone else's file is left alone)."""
    found = path.stat()
    if found.st_mode & 0o777 != mode and found.st_uid == os.getuid():
        path.chmod(mode)


def _private_sqlite_file(url: str) -> None:
    """A SQLite database file readable by its owner alone (0600), made so before SQLite first
    opens it: its WAL and shared-memory files take the database file's mode."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    path = Path(database)
    with suppress(FileExistsError, FileNotFoundError):  # no folder: SQLite will say so
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    for found in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        if found.exists():
            _narrow(found, PRIVATE_FILE)


def migrate(settings: Settings) -> None:
    """Bring the configured database to the newest schema (a SQLite file is made private)."""
    url = settings.effective_database_url()
    if make_url(url).get_backend_name() == "sqlite":
        prepare_data_dir(settings)
        _private_sqlite_file(url)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def ensure_secret_key(settings: Settings) -> None:
    """Create the embedded key file (when ORCH_SECRET_KEYS is unset) before any child process
    can race to create its own."""
    prepare_data_dir(settings)
    secret_box(settings.secret_keys, settings.data_dir)


def describe_database(settings: Settings) -> str:
    """The database URL without its password, for people to read."""
    return make_url(settings.effective_database_url()).render_as_string(hide_password=True)
