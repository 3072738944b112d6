"""The broker's Redis: its URL, Celery's transport options for it, and redis-py clients on it.

ORCH_REDIS_URL is one server (``redis://:PASSWORD@host:6379/0``) or a list of Sentinels
(``sentinel://:PASSWORD@h1:26379/0;sentinel://h2:26379;sentinel://h3:26379``) that name the
master of ORCH_REDIS_SENTINEL_MASTER. As with kombu, the first entry carries the master's
password and database; the Sentinels' own password, if they have one, is
ORCH_REDIS_SENTINEL_PASSWORD. Every direct use of Redis (node API counters, /metrics, the beat
leader lock, /readyz, ``up``'s wait for the broker) gets its client here, so after a failover
each one finds the new master the way Celery does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from orchestrator.errors import ConfigError
from orchestrator.settings import Settings

SENTINEL_SCHEME = "sentinel"
SENTINEL_PORT = 26379
# Seconds a direct client waits to connect and for an answer: metrics and health never hang.
CLIENT_TIMEOUT = 2.0


def broker_url(settings: Settings) -> str:
    """The broker URL the workers use."""
    return settings.redis_url or "redis://127.0.0.1:6379/0"


def is_sentinel(url: str) -> bool:
    """Whether ``url`` lists Sentinels rather than naming one Redis server."""
    return url.strip().lower().startswith(f"{SENTINEL_SCHEME}://")


@dataclass(frozen=True)
class SentinelList:
    """What a ``sentinel://…;sentinel://…`` URL says: the Sentinels, and how to log in to
    the master they name."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    db: int


def sentinel_list(url: str) -> SentinelList:
    """Parse a Sentinel list; ConfigError (never quoting the URL: it may hold a password)."""
    nodes: list[tuple[str, int]] = []
    first = None
    for entry in filter(None, (part.strip() for part in url.split(";"))):
        try:
            parts = urlsplit(entry)
            port = parts.port or SENTINEL_PORT
        except ValueError:
            raise ConfigError(f"ORCH_REDIS_URL: entry {len(nodes) + 1} is not a URL") from None
        if parts.scheme.lower() != SENTINEL_SCHEME or not parts.hostname:
            raise ConfigError(
                f"ORCH_REDIS_URL: entry {len(nodes) + 1} must be sentinel://host[:port] "
                "(a Sentinel list is only Sentinels, separated by ';')"
            )
        nodes.append((parts.hostname, port))
        first = first or parts
    if first is None:
        raise ConfigError("ORCH_REDIS_URL names no Sentinel")
    path = first.path.strip("/")
    if path and not path.isdigit():
        raise ConfigError("ORCH_REDIS_URL: the database after the first Sentinel must be a number")
    return SentinelList(
        nodes=tuple(nodes),
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
        db=int(path or 0),
    )


def sentinel_kwargs(settings: Settings, timeout: float = CLIENT_TIMEOUT) -> dict[str, Any]:
    """How to talk to the Sentinels themselves: timeouts, and their password if they have one."""
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if settings.redis_sentinel_password is not None:
        kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
    return kwargs


def transport_options(settings: Settings) -> dict[str, Any]:
    """Celery's broker_transport_options beyond the visibility timeout: the master's name and
    the Sentinels' login with a Sentinel list, nothing for one server."""
    url = broker_url(settings)
    if not is_sentinel(url):
        return {}
    sentinel_list(url)  # a malformed list fails here, at start, not at the first publish
    return {
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": sentinel_kwargs(settings),
    }


class MasterClient(redis.Redis):
    """A client on the master the Sentinels name; closing it closes their connections too."""

    sentinels: Sentinel | None = None

    def close(self) -> None:
        """Close the master's connections, then the Sentinels'."""
        super().close()
        if self.sentinels is not None:
            self.sentinels.close()


def connect(settings: Settings, timeout: float = CLIENT_TIMEOUT) -> redis.Redis:
    """A client on the broker's Redis (its current master with Sentinel), short timeouts.

    With Sentinel every new connection asks for the master's address, and a connection to a
    master that was demoted fails (READONLY becomes a ConnectionError), so the next command
    after a failover reaches the new master.
    """
    url = broker_url(settings)
    if not is_sentinel(url):
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    found = sentinel_list(url)
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(found.nodes),
        sentinel_kwargs=sentinel_kwargs(settings, timeout),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    client: MasterClient = sentinels.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master,
        redis_class=MasterClient,
        username=found.username,
        password=found.password,
        db=found.db,
    )
    client.sentinels = sentinels
    return client


def answers(settings: Settings, timeout: float = 1.0) -> bool:
    """Whether the broker (its master, with Sentinel) answers PING."""
    client = connect(settings, timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
