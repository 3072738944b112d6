"""Commands that work on the database directly (no API needed): ``db upgrade``, ``db
rotate-secrets`` and ``token create|list|revoke``.

They read the same ORCH_* settings as the services (ORCH_DATABASE_URL, or the SQLite file in
ORCH_DATA_DIR). The services are imported when a command runs (the API commands start fast).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.cli.console import EXIT_USAGE, err, fail, out, seconds_of, usage, when
from orchestrator.cli.output import Column, Output, OutputOpt, WideOpt, print_json, print_rows

if TYPE_CHECKING:
    from orchestrator.settings import Settings

db_app = typer.Typer(
    help="The database schema.\n\nExample: hsts-orchestrator db upgrade",
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="API tokens for the REST API and the CLI.\n\n"
    "Example: hsts-orchestrator token create --name ci --scope submit",
    no_args_is_help=True,
)


class TokenScope(StrEnum):
    """The scopes of orchestrator.services.tokens.Scope, as the command line offers them."""

    read = "read"
    submit = "submit"
    admin = "admin"


def local_settings() -> Settings:
    """The ORCH_* settings, with the embedded defaults spelled out."""
    from pydantic import ValidationError

    from orchestrator.bootstrap import with_local_defaults
    from orchestrator.settings import load_settings

    try:
        return with_local_defaults(load_settings())
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = "_".join(str(p) for p in first["loc"]).upper()
        which = f" ORCH_{loc}" if loc else "s"
        fail(f"invalid setting{which}: {first['msg']} (see config/settings.example.env)")


def database_failure(exc: Exception, settings: Settings) -> str:
    """One line saying what went wrong with the database and what to do."""
    from orchestrator.bootstrap import describe_database

    detail = str(getattr(exc, "orig", None) or exc).split("\n", 1)[0]
    where = describe_database(settings)
    if "no such table" in detail or "does not exist" in detail:
        return f"the database {where} has no tables yet: run `hsts-orchestrator db upgrade`"
    return f"database {where}: {detail} (check ORCH_DATABASE_URL)"


@db_app.command()
def upgrade() -> None:
    """Create or migrate the database schema to the newest version (safe to run again).

    Uses ORCH_DATABASE_URL, or the SQLite file in ORCH_DATA_DIR when it is unset.

    Example: ORCH_DATABASE_URL=postgresql+psycopg://orch@db/orch hsts-orchestrator db upgrade
    """
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.bootstrap import describe_database, migrate

    settings = local_settings()
    try:
        migrate(settings)
    except SQLAlchemyError as exc:
        fail(database_failure(exc, settings))
    out.print(f"database {describe_database(settings)} is up to date", markup=False)


@db_app.command("rotate-secrets")
def rotate_secrets() -> None:
    """Re-encrypt every node secret with the first key of ORCH_SECRET_KEYS.

    Rotation: put a new key first in ORCH_SECRET_KEYS (keep the old one after it), restart
    the services, run this, then drop the old key.

    Example: ORCH_SECRET_KEYS=$NEW,$OLD hsts-orchestrator db rotate-secrets
    """
    from orchestrator.bootstrap import opened
    from orchestrator.services.nodes.registry import rotate_node_secrets

    with opened(local_settings()) as ctx:
        count = rotate_node_secrets(ctx)
    out.print(f"{count} node secret(s) re-encrypted with the newest key", markup=False)


@token_app.command()
def create(
    name: Annotated[str, typer.Option(help="Who or what the token is for.", show_default=False)],
    scope: Annotated[
        TokenScope, typer.Option(help="read < submit < admin; each includes the ones before.")
    ] = TokenScope.read,
    expires_in: Annotated[
        str | None,
        typer.Option(
            help="Let the token expire after this long: 12h, 30d, ... (default: never).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create an API token and print it once (only its hash is stored).

    The token alone goes to stdout, so a script can capture it.

    Example: export ORCH_API_TOKEN=$(hsts-orchestrator token create --name me --scope submit)
    """
    from datetime import timedelta

    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.bootstrap import opened
    from orchestrator.domain.text import unreadable_character
    from orchestrator.services.tokens import Scope, issue_token

    if not name.strip():
        fail("--name must not be empty", EXIT_USAGE)
    if len(name.strip()) > 128:
        usage("--name: 128 characters at most")
    if (found := unreadable_character(name)) is not None:
        usage(f"--name: control, invisible or bidirectional characters are not allowed ({found})")
    lifetime = None
    if expires_in is not None:
        seconds = seconds_of(expires_in, "--expires-in")
        if seconds <= 0:
            usage("--expires-in must be longer than 0")
        lifetime = timedelta(seconds=seconds)
    settings = local_settings()
    try:
        with opened(settings) as ctx:
            issued = issue_token(ctx, name.strip(), [Scope(scope.value)], lifetime=lifetime)
    except SQLAlchemyError as exc:
        fail(database_failure(exc, settings))
    until = f", expires {issued.expires_at:%Y-%m-%d %H:%M} UTC" if issued.expires_at else ""
    err.print(
        f"token {issued.name!r} ({', '.join(issued.scopes)}{until}) created; it is shown "
        "once, store it now:",
        markup=False,
    )
    out.print(issued.secret, markup=False)


@token_app.command("list")
def list_tokens(output: OutputOpt = Output.table, wide: WideOpt = False) -> None:
    """List the API tokens: id, name, scopes, when each was last used, expiry, state.

    Secrets are never shown (only their hash is stored); the prefix is what logs show.

    Example: hsts-orchestrator token list
    """
    from dataclasses import asdict

    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.bootstrap import opened
    from orchestrator.services import tokens

    settings = local_settings()
    try:
        with opened(settings) as ctx:
            found = tokens.list_tokens(ctx)
    except SQLAlchemyError as exc:
        fail(database_failure(exc, settings))
    if output is Output.json:
        print_json([asdict(t) for t in found])  # what GET /api/v1/tokens answers
        return
    if not found:
        out.print("no tokens (make one: hsts-orchestrator token create --help)")
        return
    print_rows(
        TOKEN_COLUMNS,
        (
            (
                str(token.id),
                token.name,
                f"hso_{token.prefix}",
                ",".join(token.scopes),
                when(token.created_at.isoformat()),
                when(token.last_used_at.isoformat() if token.last_used_at else None),
                when(token.expires_at.isoformat()) if token.expires_at else "never",
                token.state,
            )
            for token in found
        ),
        wide=wide,
    )


TOKEN_COLUMNS = (
    Column("ID"),
    Column("NAME", cut=True),
    Column("PREFIX"),
    Column("SCOPES", cut=True),
    Column("CREATED", wide_only=True),
    Column("LAST USED"),
    Column("EXPIRES", cut=True),
    Column("STATE"),
)


@token_app.command()
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see: token list).")],
) -> None:
    """Revoke a token at once (API calls and dashboard sessions made with it stop working).

    Example: hsts-orchestrator token revoke 7
    """
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.bootstrap import opened
    from orchestrator.services.tokens import revoke_token

    settings = local_settings()
    try:
        with opened(settings) as ctx:
            info = revoke_token(ctx, token_id)
    except SQLAlchemyError as exc:
        fail(database_failure(exc, settings))
    out.print(f"token {info.id} {info.name!r} (hso_{info.prefix}) revoked", markup=False)
