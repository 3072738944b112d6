"""The banner of ``up``: where each part listens, its credentials, and what to paste in a new
shell (commands that work as printed there, with no virtualenv active)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.bootstrap import describe_database
from orchestrator.cli import demo, roles
from orchestrator.cli.redis_server import describe_broker

if TYPE_CHECKING:
    from orchestrator.cli.stack import Stack


def banner_lines(stack: Stack) -> list[str]:
    """The banner: where everything is, its credentials, and what to try first."""
    url = stack.api_url
    broker = describe_broker(stack.settings.redis_url or "")
    docs = (
        f"docs: {url}/api/v1/docs"
        if stack.settings.api_docs
        else f"OpenAPI: {url}/api/v1/openapi.json"
    )
    lines: list[str] = [
        "",
        f"hsts-orchestrator is up (Ctrl-C stops everything; Enter or kill -USR1 {os.getpid()} "
        "shows this again)",
        f"  dashboard {url}/   (sign in with an API token)",
        f"  API       {url}/api/v1   {docs}   metrics: {url}/metrics",
        f"  Flower    {stack.flower_url}   user {roles.FLOWER_USER}   "
        f"password {stack.flower_password}",
        f"  database  {describe_database(stack.settings)}",
        f"  broker    {broker}{' (embedded redis-server)' if stack.broker_embedded else ''}",
        f"  data dir  {stack.settings.data_dir}",
    ]
    for node in stack.nodes:
        samples = "   sample files in /outgoing" if node["name"] == demo.NODES[0] else ""
        lines.append(f"  {node['name']:<8}  {node['api_url']}   docroot {node['docroot']}{samples}")
    if stack.token and stack.env_file is not None:
        lines += _try_it(stack, stack.token, stack.env_file)
    else:
        cd, command = _new_shell([])
        data_dir = (Path.cwd() / stack.settings.data_dir).resolve()
        lines += [
            "",
            "Make an API token in another terminal (with this stack's ORCH_* settings) and use it:",
            *cd,
            f"  export ORCH_DATA_DIR={shlex.quote(str(data_dir))} ORCH_API_URL={url}",
            f"  export ORCH_API_TOKEN=$({command} token create --name me --scope submit)",
            f"  {command} nodes add --help",
        ]
    lines.append("")
    return lines


def _new_shell(paths: list[str]) -> tuple[list[str], str]:
    """How a new shell runs this CLI, and the cd it needs first when that or ``paths`` are
    relative to this directory."""
    cwd = Path.cwd()
    command = demo.cli_command(cwd)
    words = [*paths, *(word for word in command.split()[:1] if "/" in word)]
    relative = any(not Path(word).is_absolute() for word in words)
    return ([f"  cd {shlex.quote(str(cwd))}"] if relative else []), command


def _try_it(stack: Stack, token: str, env_file: Path) -> list[str]:
    """The demo's token and what to paste in a new shell, as it must be pasted."""
    source = demo.shown_path(env_file, Path.cwd())
    cd, command = _new_shell([source])
    kept = (
        "new; earlier demo tokens revoked"
        if stack.fresh_token
        else "the same as last run; up --demo --new-token for another"
    )
    body = json.dumps(
        {
            "source_node": "node-a",
            "source_paths": ["outgoing"],
            "destination_node": "node-b",
            "destination_path": "incoming",
        }
    )
    return [
        f"  API token {token}   (admin; {kept})",
        "",
        f"Try it in another terminal ({source} holds the API URL, token and broker URL; 0600):",
        *cd,
        f"  source {shlex.quote(source)}",
        f"  {command} jobs submit --from node-a:outgoing --to node-b:incoming --watch",
        f"  {command} schedules add mirror --from node-a:outgoing --to node-b:mirror --every 5m",
        "or with curl:",
        f'  curl -H "Authorization: Bearer $ORCH_API_TOKEN" -H \'Content-Type: '
        f"application/json' -d '{body}' $ORCH_API_URL/api/v1/jobs",
    ]
