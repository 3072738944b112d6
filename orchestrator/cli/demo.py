"""What ``up --demo`` hands a newcomer: an admin token kept across restarts, a file to source
(API URL, token and broker URL; 0600) and commands that work as printed in a new shell."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from orchestrator.cli.redis_server import write_private
from orchestrator.services.context import ServiceContext
from orchestrator.services.tokens import Scope, authenticate, issue_token

NODES = ("node-a", "node-b")  # node-a holds the sample files
ENV_FILE = "demo.env"
TOKEN_NAME = "up --demo"  # noqa: S105 (a label: the token the demo made and keeps)
_TOKEN_LINE = re.compile(r"^export ORCH_API_TOKEN=(\S+)$", re.M)


def previous_token(path: Path) -> str | None:
    """The token an earlier run wrote to the env file, if any."""
    try:
        found = _TOKEN_LINE.search(path.read_text())
    except OSError:
        return None
    return shlex.split(found.group(1))[0] if found else None


def demo_token(ctx: ServiceContext, previous: str | None, *, new: bool) -> tuple[str, bool]:
    """The earlier demo token while it still works (unless ``new``), else a fresh one that
    revokes the earlier ones; and whether it is fresh."""
    if previous and not new:
        caller = authenticate(ctx, previous)
        if caller is not None and caller.name == TOKEN_NAME and caller.allows(Scope.ADMIN):
            return previous, False
    return issue_token(ctx, TOKEN_NAME, [Scope.ADMIN], replace=True).secret, True


def write_env_file(path: Path, *, api_url: str, token: str, broker_url: str) -> None:
    """The file a shell sources to talk to this stack (only its owner may read it)."""
    write_private(
        path,
        "# written by `hsts-orchestrator up --demo`; use it with: source " + str(path) + "\n"
        f"export ORCH_API_URL={shlex.quote(api_url)}\n"
        f"export ORCH_API_TOKEN={shlex.quote(token)}\n"
        "# the broker, for Celery send_task (the stack itself does not read this variable)\n"
        f"export ORCH_BROKER_URL={shlex.quote(broker_url)}\n",
    )


def shown_path(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` when it lies under it, else absolute."""
    absolute = path if path.is_absolute() else cwd / path
    try:
        return str(absolute.relative_to(cwd))
    except ValueError:
        return str(absolute)


def cli_command(cwd: Path) -> str:
    """How a new shell (no virtualenv active) runs this CLI."""
    script = Path(sys.executable).parent / "hsts-orchestrator"
    if not (script.is_file() and os.access(script, os.X_OK)):
        return f"{shlex.quote(sys.executable)} -m orchestrator.cli"
    in_venv = sys.prefix != sys.base_prefix
    if not in_venv and shutil.which("hsts-orchestrator") == str(script):
        return "hsts-orchestrator"
    return shlex.quote(shown_path(script, cwd))
