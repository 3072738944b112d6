"""One role of the stack in the foreground: ``api``, ``worker``, ``beat``, ``flower``.

For deployments that run each role under their own supervisor (systemd, containers). The
celery roles replace this process with ``celery -A workers ...`` (signals go straight to
celery); options the command does not know are handed to celery unchanged.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.console import err, usage
from orchestrator.cli.local import local_settings
from orchestrator.logsetup import configure_logging

if TYPE_CHECKING:
    from orchestrator.settings import Settings

QUEUES = "default,submit,poll"
FLOWER_USER = "admin"
# Flower options that set or drop its authentication: the flower command owns them.
FLOWER_AUTH_OPTIONS = {"basic_auth", "conf"}
# orchestrator.api and orchestrator.cli are sibling entry points (DESIGN.md layers): the CLI
# names the API's ASGI factory for uvicorn instead of importing it.
API_FACTORY = "orchestrator.api.asgi:app"
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


# -- command lines ------------------------------------------------------------------------------


def celery_argv(role: str, *args: str) -> list[str]:
    """``python -m celery -A workers <role> ...`` with this interpreter."""
    return [sys.executable, "-m", "celery", "-A", "workers", role, *args]


def worker_argv(
    *,
    concurrency: int,
    name: str,
    log_level: str,
    queues: str = QUEUES,
    extra: tuple[str, ...] = (),
) -> list[str]:
    """A worker on every queue (dispatch and sweeps, submissions, polls)."""
    return celery_argv(
        "worker",
        "-Q",
        queues,
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        f"--loglevel={log_level}",
        *extra,
    )


def beat_argv(*, schedule: Path, log_level: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Beat, its schedule state in ``schedule``."""
    return celery_argv("beat", "-s", str(schedule), f"--loglevel={log_level}", *extra)


def flower_argv(
    *, address: str, port: int, url_prefix: str | None = None, extra: tuple[str, ...] = ()
) -> list[str]:
    """Flower, read-only; its basic-auth credential goes in the environment (see flower_env).

    ``--conf=/dev/null``: no flowerconfig.py (in the working directory or named by
    FLOWER_CONF) can replace the credential after the environment set it.
    """
    argv = celery_argv(
        "flower",
        f"--address={address}",
        f"--port={port}",
        "--read_only=true",
        "--conf=/dev/null",
    )
    if url_prefix:
        argv.append(f"--url_prefix={url_prefix}")
    return [*argv, *extra]


def flower_env(user: str, password: str) -> dict[str, str]:
    """Flower reads FLOWER_* variables: the credential stays off the command line."""
    return {"FLOWER_BASIC_AUTH": f"{user}:{password}"}


def auth_overrides(args: list[str] | tuple[str, ...]) -> list[str]:
    """Options passed on to Flower that would replace the credential this command sets."""

    def name(arg: str) -> str:
        return arg.split("=", 1)[0].lstrip("-").replace("-", "_")

    return [a for a in args if a.startswith("-") and name(a) in FLOWER_AUTH_OPTIONS]


def new_password() -> str:
    """A password for Flower's basic auth."""
    return secrets.token_urlsafe(12)


def python_module(module: str) -> list[str]:
    """``python -m module`` with this interpreter (e.g. hstssim, run as a program)."""
    return [sys.executable, "-m", module]


def api_argv(*, host: str, port: int) -> list[str]:
    """The API role of this CLI with this interpreter."""
    return [sys.executable, "-m", "orchestrator.cli", "api", "--host", host, "--port", str(port)]


def is_loopback(address: str) -> bool:
    """Whether ``address`` only listens on this machine."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def role_settings() -> Settings:
    """The ORCH_* settings with the embedded defaults spelled out."""
    return local_settings()


def _exec(argv: list[str], env: dict[str, str] | None = None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    # Our own argv (this interpreter, celery and its options), no shell.
    os.execve(argv[0], argv, env if env is not None else dict(os.environ))  # noqa: S606


# -- the commands ------------------------------------------------------------------------------


def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API (uvicorn) in the foreground.

    Run `hsts-orchestrator db upgrade` once before. Put TLS in front of it beyond one machine.

    Example: hsts-orchestrator api --host 0.0.0.0 --port 8000
    """
    import uvicorn

    settings = role_settings()
    configure_logging(settings, "api")
    uvicorn.run(
        API_FACTORY,
        factory=True,
        host=host,
        port=port,
        log_config=None,  # uvicorn's loggers go to our root handler (format, masking)
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Pool processes.")
    ] = 2,
    queues: Annotated[str, typer.Option("--queues", "-Q", help="Queues to consume.")] = QUEUES,
    name: Annotated[str, typer.Option(help="Worker name (the host is appended).")] = "worker",
) -> None:
    """Run a Celery worker in the foreground (start as many as you like, on any hosts).

    Other options are passed to `celery worker`.

    Example: hsts-orchestrator worker --concurrency 4
    """
    settings = role_settings()
    _exec(
        worker_argv(
            concurrency=concurrency,
            name=name,
            log_level=settings.log_level,
            queues=queues,
            extra=tuple(ctx.args),
        )
    )


def beat(
    ctx: typer.Context,
    schedule: Annotated[
        Path | None,
        typer.Option(help="Beat's state file (default: ORCH_DATA_DIR/celerybeat-schedule)."),
    ] = None,
) -> None:
    """Run Celery beat in the foreground: polls, sweeps. Run exactly one in the whole system.

    Other options are passed to `celery beat`.

    Example: hsts-orchestrator beat
    """
    from orchestrator.bootstrap import prepare_data_dir

    settings = role_settings()
    prepare_data_dir(settings)
    state = schedule or settings.data_dir / "celerybeat-schedule"
    _exec(beat_argv(schedule=state, log_level=settings.log_level, extra=tuple(ctx.args)))


def flower(
    ctx: typer.Context,
    address: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 5555,
    user: Annotated[str, typer.Option(help="Basic-auth user.")] = FLOWER_USER,
    password_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable holding the basic-auth password "
            "(default: a new one, printed once).",
            show_default=False,
        ),
    ] = None,
    url_prefix: Annotated[
        str | None, typer.Option(help="Serve under this path (behind a proxy).")
    ] = None,
) -> None:
    """Run Flower (Celery task monitor) in the foreground: read-only, always behind basic auth.

    Other options are passed to `celery flower`.

    Example: FLOWER_PW=s3cret hsts-orchestrator flower --port 5555 --password-env FLOWER_PW
    """
    if ":" in user or "," in user or not user:
        usage("--user must be non-empty and hold no ':' or ','")
    overrides = auth_overrides(ctx.args)
    if overrides:
        usage(
            f"{overrides[0]}: Flower's authentication is set by --user and --password-env "
            "(basic auth, always on)"
        )
    if password_env is not None:
        password = os.environ.get(password_env, "")  # a variable the user names
        if not password:
            usage(f"--password-env: the environment variable {password_env} is not set")
        if "," in password:
            usage(f"--password-env: the password in {password_env} must hold no ','")
    else:
        password = new_password()
        err.print(f"Flower basic auth: user {user}, password {password}", markup=False)
    if not is_loopback(address):
        err.print(
            f"Flower listens on {address}: basic auth over plain HTTP; put TLS in front of it",
            markup=False,
        )
    role_settings()  # fail early on invalid ORCH_* settings
    env = {**os.environ, **flower_env(user, password)}
    _exec(
        flower_argv(address=address, port=port, url_prefix=url_prefix, extra=tuple(ctx.args)), env
    )
