"""The ``hsts-orchestrator`` command: every sub-command, and one place that turns failures into
one clear line and an exit status (2 for bad input, 1 for anything else), never a traceback."""

from __future__ import annotations

import sys

import click
import typer
from typer.main import get_command

from orchestrator import __version__
from orchestrator.cli import jobs, local, nodes, roles, schedules, up
from orchestrator.cli.console import EXIT_FAILURE, EXIT_USAGE, CliError, say_error
from orchestrator.cli.helptext import polish
from orchestrator.errors import OrchestratorError

HELP_OPTIONS = ["-h", "--help"]
app = typer.Typer(
    name="hsts-orchestrator",
    help="Orchestrate server-to-server transfers between IBM Aspera HSTS nodes.\n\n"
    "Start here: hsts-orchestrator up --demo (the whole stack and two simulated nodes), then "
    "hsts-orchestrator jobs submit --from node-a:outgoing --to node-b:incoming --watch",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTIONS},
)

_STACK = "Run the stack"
_USE = "Use it (over the REST API)"
_ADMIN = "Administer it (on the database)"

app.command(rich_help_panel=_STACK)(up.up)
app.command(rich_help_panel=_STACK)(roles.api)
app.command(rich_help_panel=_STACK, context_settings=roles.PASSTHROUGH)(roles.worker)
app.command(rich_help_panel=_STACK, context_settings=roles.PASSTHROUGH)(roles.beat)
app.command(rich_help_panel=_STACK, context_settings=roles.PASSTHROUGH)(roles.flower)
app.add_typer(jobs.app, name="jobs", rich_help_panel=_USE)
app.add_typer(nodes.app, name="nodes", rich_help_panel=_USE)
app.add_typer(schedules.app, name="schedules", rich_help_panel=_USE)
app.add_typer(local.db_app, name="db", rich_help_panel=_ADMIN)
app.add_typer(local.token_app, name="token", rich_help_panel=_ADMIN)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hsts-orchestrator {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Orchestrate server-to-server transfers between IBM Aspera HSTS nodes."""


# typer >= 0.25 carries its own copy of click; older versions raise click's exceptions.
_PARSE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException,
    getattr(typer, "TyperException", click.ClickException),
)
_ABORTS: tuple[type[BaseException], ...] = (click.Abort, typer.Abort, KeyboardInterrupt)


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit status."""
    command = get_command(app)
    polish(command, HELP_OPTIONS)
    try:
        result = command.main(
            args=argv if argv is not None else sys.argv[1:],
            prog_name="hsts-orchestrator",
            standalone_mode=False,
        )
    except CliError as exc:
        say_error(exc.message)
        return exc.code
    except OrchestratorError as exc:
        say_error(str(exc))
        return EXIT_FAILURE
    except _ABORTS:
        return 130
    except _PARSE_ERRORS as exc:
        return _parse_error(exc)
    return result if isinstance(result, int) else 0


def _parse_error(exc: Exception) -> int:
    """A command-line mistake as one line (the help was already shown for a bare group)."""
    code = getattr(exc, "exit_code", EXIT_USAGE)
    if type(exc).__name__ == "NoArgsIsHelpError":
        return int(code)
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    hint = f" (see: {path} --help)" if path and code == EXIT_USAGE else ""
    say_error(" ".join(str(message).split()) + hint)
    return int(code)
