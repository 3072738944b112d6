"""``hsts-orchestrator nodes``: register, list, check and remove HSTS nodes (admin, over the API).

Secrets never go on the command line: give the name of an environment variable that holds the
password (``--password-env``), or pipe it in (``--password-stdin``). They are never printed.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.cli.client import DEFAULT_API, ApiClient, ApiToken, ApiUrl, segment
from orchestrator.cli.console import fail, out, seconds_of, usage, when
from orchestrator.cli.links import app as links_app
from orchestrator.cli.output import (
    Column,
    Output,
    OutputOpt,
    WideOpt,
    print_fields,
    print_json,
    print_rows,
)

app = typer.Typer(
    help="Register the HSTS nodes jobs move files between, and check they answer.\n\n"
    "Example: NODE_PW=... hsts-orchestrator nodes add paris --url https://hsts-paris:9092 "
    "--user orchestrator --password-env NODE_PW",
    no_args_is_help=True,
)


NodeArg = Annotated[str, typer.Argument(help="The node's name.", show_default=False)]


class AuthKind(StrEnum):
    """How the orchestrator authenticates to the node."""

    node_user = "node_user"
    access_key = "access_key"
    bearer = "bearer"


def read_secret(password_env: str | None, password_stdin: bool) -> str:
    """The node secret from a named environment variable or from stdin (never from argv)."""
    if (password_env is None) == (not password_stdin):
        usage("give the secret with exactly one of --password-env VAR or --password-stdin")
    if password_env is not None:
        secret = os.environ.get(password_env)  # a variable the user names, not a setting
        if not secret:
            usage(f"--password-env: the environment variable {password_env} is not set")
        return secret
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        usage("--password-stdin: nothing was read from stdin")
    return secret


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="A name for the node (jobs use it).")],
    url: Annotated[
        str | None,
        typer.Option(help="Node API URL, e.g. https://hsts:9092.", show_default=False),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Node user, or access key id.", show_default=False)
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable that holds the password/secret.",
            show_default=False,
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password/secret from stdin.")
    ] = False,
    kind: Annotated[AuthKind, typer.Option(help="How to authenticate.")] = AuthKind.node_user,
    ca_bundle: Annotated[
        str | None,
        typer.Option(help="PEM CA bundle the node's certificate chains to.", show_default=False),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Skip TLS verification (test nodes only).")
    ] = False,
    transfer_host: Annotated[
        str | None,
        typer.Option(help="Address other nodes use to reach this one.", show_default=False),
    ] = None,
    root: Annotated[str, typer.Option(help="Jobs may only touch this subtree.")] = "/",
    max_out: Annotated[int, typer.Option(min=1, max=1000, help="Outbound transfers.")] = 10,
    max_in: Annotated[int, typer.Option(min=1, max=1000, help="Inbound transfers.")] = 10,
    ssh: Annotated[
        str | None,
        typer.Option(
            "--ssh",
            help="Register an SSH endpoint at this host instead: a destination with no Node "
            "API, reached by its transfer user's SSH password or key.",
            show_default=False,
            rich_help_panel="SSH endpoint",
        ),
    ] = None,
    ssh_user: Annotated[
        str | None,
        typer.Option(
            help="The endpoint's transfer user.",
            show_default=False,
            rich_help_panel="SSH endpoint",
        ),
    ] = None,
    ssh_password_env: Annotated[
        str | None,
        typer.Option(
            help="Name of an environment variable that holds the transfer user's password.",
            show_default=False,
            rich_help_panel="SSH endpoint",
        ),
    ] = None,
    ssh_key_file: Annotated[
        Path | None,
        typer.Option(
            help="The transfer user's private key (PEM, without passphrase).",
            show_default=False,
            rich_help_panel="SSH endpoint",
        ),
    ] = None,
    ssh_port: Annotated[
        int,
        typer.Option(min=1, max=65535, help="The SSH port.", rich_help_panel="SSH endpoint"),
    ] = 33001,
    sshfp: Annotated[
        str | None,
        typer.Option(
            help="Host key fingerprint to pin (hex, or SHA256:...); ascp refuses another host.",
            show_default=False,
            rich_help_panel="SSH endpoint",
        ),
    ] = None,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Register a node (admin token); its secret is stored encrypted and never shown again.

    Example: NODE_PW=s3cret hsts-orchestrator nodes add paris --url https://hsts-paris:9092
    --user orchestrator --password-env NODE_PW --transfer-host hsts-paris.example.com

    An SSH endpoint (a destination with no Node API):
    XFER_PW=s3cret hsts-orchestrator nodes add partner --ssh hsts.partner.example.com
    --ssh-user xfer --ssh-password-env XFER_PW --sshfp b42dcb718dd3a04c90e160817d40da9af6e8895a
    """
    if ssh is not None:
        if url is not None or user is not None or password_env or password_stdin:
            usage("--ssh registers an SSH endpoint: give --ssh-user and its credential, no --url")
        body_ssh = ssh_endpoint_body(
            name, ssh, ssh_user, ssh_password_env, ssh_key_file, ssh_port, sshfp
        )
        body_ssh["root_path"] = root
        body_ssh["max_inbound"] = max_in
        with ApiClient(api, token) as client:
            node = client.post("/api/v1/nodes", body_ssh)
        out.print(
            f"SSH endpoint {node['name']} registered: {node['base_url']} (transfer user "
            f"{node['username']}); it can be a job's destination only",
            markup=False,
        )
        return
    if url is None or user is None:
        usage("give --url and --user (a Node API node), or --ssh HOST (an SSH endpoint)")
    secret = read_secret(password_env, password_stdin)
    body: dict[str, Any] = {
        "name": name,
        "base_url": url,
        "auth_kind": kind.value,
        "username": user,
        "secret": secret,
        "ca_bundle": ca_bundle,
        "insecure": insecure,
        "transfer_host": transfer_host,
        "root_path": root,
        "max_outbound": max_out,
        "max_inbound": max_in,
    }
    with ApiClient(api, token) as client:
        node = client.post("/api/v1/nodes", body)
    out.print(
        f"node {node['name']} registered: {node['base_url']} ({node['auth_kind']} "
        f"{node['username']}); check it with: hsts-orchestrator nodes check {node['name']}",
        markup=False,
    )


def ssh_endpoint_body(
    name: str,
    host: str,
    user: str | None,
    password_env: str | None,
    key_file: Path | None,
    port: int,
    sshfp: str | None,
) -> dict[str, Any]:
    """The API body of an SSH endpoint; its credential from a named variable or a key file."""
    if not user:
        usage("--ssh needs --ssh-user (the endpoint's transfer user)")
    if (password_env is None) == (key_file is None):
        usage("give the credential with exactly one of --ssh-password-env VAR or --ssh-key-file")
    body: dict[str, Any] = {
        "kind": "ssh",
        "name": name,
        "ssh_host": host,
        "ssh_port": port,
        "ssh_user": user,
        "sshfp": sshfp,
    }
    if password_env is not None:
        password = os.environ.get(password_env)  # a variable the user names, not a setting
        if not password:
            usage(f"--ssh-password-env: the environment variable {password_env} is not set")
        body["ssh_password"] = password
    else:
        assert key_file is not None
        try:
            body["ssh_private_key"] = key_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            usage(f"--ssh-key-file: cannot read {key_file}: {type(exc).__name__}")
    return body


def _reachable(node: dict[str, Any]) -> str:
    reachable = node.get("reachable")
    return "unknown" if reachable is None else ("yes" if reachable else "no")


def _error(node: dict[str, Any]) -> str:
    """Why the node is unreachable: the error of the newer of its last poll and last check."""
    if node.get("reachable") is not False:
        return ""
    by_check = node.get("checked_at") and node.get("checked_at") == node.get("reachable_as_of")
    return str((node.get("check_error") if by_check else node.get("last_error")) or "")


@app.command("list")
def list_nodes(
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """List registered nodes: whether they answer, their version, last check and last poll.

    Every enabled node is checked (ping and /info) every ORCH_NODE_CHECK_SECONDS, destinations
    included; times are UTC. `nodes show NAME` has the rest of a node's settings.

    Example: hsts-orchestrator nodes list
    """
    with ApiClient(api, token) as client:
        nodes = client.get("/api/v1/nodes")
    if output is Output.json:
        print_json(nodes)
        return
    if not nodes:
        out.print("no nodes registered (add one: hsts-orchestrator nodes add --help)")
        return
    print_rows(
        NODE_COLUMNS,
        (
            (
                node["name"],
                node["base_url"],
                node["root_path"],
                "yes" if node["enabled"] else "no",
                _reachable(node),
                node.get("version") or "-",
                when(node.get("checked_at")),
                when(node.get("last_poll_at")),
                _error(node),
            )
            for node in nodes
        ),
        wide=wide,
    )


NODE_COLUMNS = (
    Column("NAME"),
    Column("URL", cut=True),
    Column("ROOT", cut=True),
    Column("ENABLED"),
    Column("REACHABLE"),
    Column("VERSION"),
    Column("LAST CHECK"),
    Column("LAST POLL"),
    Column("ERROR", cut=True),
)


@app.command()
def show(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """Show one node: its settings (never its secret), whether it answers, and its version.

    "sessions" is what the node runs at once (what its /info says, else its max_outbound), and
    "other clients" how many of those it ran for others when last counted: both decide when
    our jobs for it wait in our queue rather than in the node's.

    Example: hsts-orchestrator nodes show paris
    """
    with ApiClient(api, token) as client:
        node = client.get(f"/api/v1/nodes/{segment(name)}")
    if output is Output.json:
        print_json(node)
        return
    print_fields(
        [
            ("node", node["name"]),
            ("url", node["base_url"]),
            ("auth", f"{node['auth_kind']} {node['username']}"),
            ("root", node["root_path"]),
            ("transfers out/in", f"at most {node['max_outbound']}/{node['max_inbound']}"),
            ("sessions", _sessions(node)),
            ("other clients", _other_clients(node)),
            ("enabled", "yes" if node["enabled"] else "no"),
            ("reachable", _reachable(node)),
            ("as of", when(node.get("reachable_as_of"))),
            ("version", node.get("version") or "-"),
            ("last check", when(node.get("checked_at"))),
            ("last poll", when(node.get("last_poll_at"))),
            ("error", _error(node) or "-"),
            ("maintenance", node.get("maintenance") or "-"),
        ],
        wide=wide,
    )


def _sessions(node: dict[str, Any]) -> str:
    """The node's session limit and where it comes from."""
    if node.get("session_limit"):
        return f"at most {node['session_limit']} (as its /info says)"
    return f"at most {node['max_outbound']} (its max_outbound: its /info does not say)"


def _other_clients(node: dict[str, Any]) -> str:
    """Transfers the node runs for other clients, when counted."""
    if node.get("other_clients_transfers") is None:
        return "- (counted only while jobs wait for the node)"
    return f"{node['other_clients_transfers']} transfer(s), counted {when(node.get('counted_at'))}"


@app.command()
def check(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
) -> None:
    """Ask the node for /ping and /info: version, node id, transfer user, activity logging.

    Exits 1 when the node does not answer.

    Example: hsts-orchestrator nodes check paris
    """
    with ApiClient(api, token) as client:
        result = client.post(f"/api/v1/nodes/{segment(name)}/check")
    if output is Output.json:
        print_json(result)
    if not result["reachable"]:
        fail(f"node {name} does not answer: {result.get('error') or 'no reason given'}")
    if output is Output.json:
        return
    logging_on = result.get("activity_logging")
    print_fields(
        [
            ("node", result["name"]),
            ("answers", "yes"),
            ("version", result.get("version") or "?"),
            ("node id", result.get("node_id") or "?"),
            ("transfer user", result.get("transfer_user") or "?"),
            (
                "activity logging",
                "?"
                if logging_on is None
                else ("on" if logging_on else "OFF (jobs cannot be followed)"),
            ),
        ],
        wide=True,
    )


@app.command()
def disable(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Stop admitting jobs to or from a node, for maintenance; running transfers go on.

    Its jobs and schedule runs wait, saying why, until the node is enabled again.

    Example: hsts-orchestrator nodes disable paris
    """
    with ApiClient(api, token) as client:
        client.post(f"/api/v1/nodes/{segment(name)}/disable")
    out.print(
        f"node {name} disabled; bring it back with: hsts-orchestrator nodes enable {name}",
        markup=False,
    )


@app.command()
def enable(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Admit jobs to and from a node again.

    Example: hsts-orchestrator nodes enable paris
    """
    with ApiClient(api, token) as client:
        client.post(f"/api/v1/nodes/{segment(name)}/enable")
    out.print(f"node {name} enabled", markup=False)


@app.command()
def resume(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Release a node held for a full disk, and close the circuit breakers of its links.

    Use it once the space is free (or the link is healthy again): the jobs that wait for the
    node are admitted at the next dispatch instead of after the next probe.

    Example: hsts-orchestrator nodes resume paris
    """
    with ApiClient(api, token) as client:
        client.post(f"/api/v1/nodes/{segment(name)}/resume")
    out.print(f"node {name} resumed: its held jobs and paused links go on", markup=False)


@app.command()
def remove(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Remove a node that no job refers to (the API refuses otherwise).

    Example: hsts-orchestrator nodes remove paris
    """
    with ApiClient(api, token) as client:
        client.delete(f"/api/v1/nodes/{segment(name)}")
    out.print(f"node {name} removed", markup=False)


class _FileAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: AuthKind = AuthKind.node_user
    username: str = Field(min_length=1)
    password_env: str = Field(min_length=1, description="variable that holds the secret")


class _FileNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    base_url: str = Field(min_length=1)
    auth: _FileAuth
    ca_bundle: str | None = None
    insecure: bool = False
    transfer_host: str | None = None
    root: str = "/"
    max_outbound: int = 10
    max_inbound: int = 10
    activity_retention: int = 129600  # seconds the node keeps transfer records


class _NodesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[_FileNode]


@app.command()
def apply(
    file: Annotated[
        Path, typer.Argument(help="A nodes.yaml (see config/nodes.example.yaml).", exists=True)
    ],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Register or update every node of a nodes.yaml (admin token); secrets from env vars.

    Example: HSTS_PARIS_PASSWORD=... hsts-orchestrator nodes apply config/nodes.yaml
    """
    try:
        parsed = _NodesFile.model_validate(yaml.safe_load(file.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        usage(f"{file}: {_first_problem(exc)}")
    with ApiClient(api, token) as client:
        known = {n["name"] for n in client.get("/api/v1/nodes")}
        for node in parsed.nodes:
            secret = os.environ.get(node.auth.password_env)  # a variable the file names
            if not secret:
                usage(f"{file}: node {node.name}: ${node.auth.password_env} is not set")
            body: dict[str, Any] = {
                "base_url": node.base_url,
                "username": node.auth.username,
                "secret": secret,
                "ca_bundle": node.ca_bundle,
                "insecure": node.insecure,
                "transfer_host": node.transfer_host,
                "root_path": node.root,
                "max_outbound": node.max_outbound,
                "max_inbound": node.max_inbound,
                "activity_retention_seconds": node.activity_retention,
            }
            if node.name in known:
                client.call("PATCH", f"/api/v1/nodes/{segment(node.name)}", json=body)
                verb = "updated"
            else:
                client.post(
                    "/api/v1/nodes", {"name": node.name, "auth_kind": node.auth.kind, **body}
                )
                verb = "added"
            out.print(f"node {node.name} {verb}", markup=False)


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return f"not YAML ({type(exc).__name__})"


maintenance_app = typer.Typer(
    help="A node's maintenance windows: before one, work that cannot finish in time waits; "
    "during it, the node's transfers are paused and its queued jobs held; after it, they "
    "resume.\n\n"
    "Example: hsts-orchestrator nodes maintenance add paris --cron '0 2 * * SUN' "
    "--duration 2h --tz Europe/Paris --reason 'OS patching'",
    no_args_is_help=True,
)
app.add_typer(maintenance_app, name="maintenance")


@maintenance_app.command("add")
def add_maintenance(
    name: NodeArg,
    reason: Annotated[
        str, typer.Option(help="Why (shown to every job that waits).", show_default=False)
    ],
    cron: Annotated[
        str | None,
        typer.Option(help="Recurring: when it starts, 5 cron fields.", show_default=False),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(help="Recurring: how long it lasts: 30m, 2h, 1d.", show_default=False),
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the cron.")] = "UTC",
    start: Annotated[
        str | None,
        typer.Option(
            help="One-off: ISO 8601 with an offset, e.g. 2026-12-24T22:00:00+01:00.",
            show_default=False,
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="One-off: when it ends.", show_default=False)
    ] = None,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Add a maintenance window: --cron with --duration (and --tz), or --start with --end.

    Example: hsts-orchestrator nodes maintenance add paris --cron '0 2 * * SUN' --duration 2h
    --tz Europe/Paris --reason 'OS patching'

    Example: hsts-orchestrator nodes maintenance add paris --start 2026-12-24T22:00:00Z
    --end 2026-12-25T02:00:00Z --reason 'storage migration'
    """
    recurring = cron is not None or duration is not None
    if recurring == (start is not None or end is not None):
        usage("give --cron with --duration, or --start with --end")
    if recurring and (cron is None or duration is None):
        usage("a recurring window needs both --cron and --duration")
    if not recurring and (start is None or end is None):
        usage("a one-off window needs both --start and --end")
    body: dict[str, Any] = {"reason": reason}
    if recurring:
        assert duration is not None
        body |= {
            "cron": cron,
            "duration_seconds": seconds_of(duration, "--duration"),
            "timezone": tz,
        }
    else:
        body |= {"start": start, "end": end}
    with ApiClient(api, token) as client:
        window = client.post(f"/api/v1/nodes/{segment(name)}/maintenance", body)
    out.print(
        f"maintenance window {window['id']} of node {name}: {window['description']}; "
        f"next start {when(window.get('next_start'))}"
        + (
            f", in progress until {when(window['in_progress_until'])}"
            if window.get("in_progress_until")
            else ""
        ),
        markup=False,
    )


@maintenance_app.command("list")
def list_maintenance(
    name: NodeArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """List a node's maintenance windows, with their next start (UTC).

    Example: hsts-orchestrator nodes maintenance list paris
    """
    with ApiClient(api, token) as client:
        windows = client.get(f"/api/v1/nodes/{segment(name)}/maintenance")
    if output is Output.json:
        print_json(windows)
        return
    if not windows:
        out.print(
            f"node {name} has no maintenance window "
            "(add one: hsts-orchestrator nodes maintenance add --help)",
            markup=False,
        )
        return
    print_rows(
        MAINTENANCE_COLUMNS,
        (
            (
                str(w["id"]),
                w["description"],
                "until " + when(w["in_progress_until"]) if w.get("in_progress_until") else "-",
                when(w.get("next_start")),
                w["reason"],
            )
            for w in windows
        ),
        wide=wide,
    )


MAINTENANCE_COLUMNS = (
    Column("ID"),
    Column("WHEN", cut=True),
    Column("IN PROGRESS"),
    Column("NEXT START"),
    Column("REASON", cut=True),
)


@maintenance_app.command("remove")
def remove_maintenance(
    name: NodeArg,
    window_id: Annotated[int, typer.Argument(help="The window's id (see: list).", min=1)],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Remove a maintenance window; what it paused resumes at the next tick.

    Example: hsts-orchestrator nodes maintenance remove paris 3
    """
    with ApiClient(api, token) as client:
        client.delete(f"/api/v1/nodes/{segment(name)}/maintenance/{window_id}")
    out.print(f"maintenance window {window_id} of node {name} removed", markup=False)


app.add_typer(links_app, name="link-budget")
