"""``hsts-orchestrator up``: the whole stack on one machine, as supervised child processes.

The work is in ``orchestrator.cli.stack`` (imported when the command runs, so that the other
commands start fast).
"""

from __future__ import annotations

from typing import Annotated

import typer


def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Also start two simulated nodes with sample files.")
    ] = False,
    host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="API port.")] = 8000,
    flower_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Flower port (loopback, basic auth).")
    ] = 5555,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker pool processes.")] = 2,
    grace: Annotated[
        float,
        typer.Option(
            min=0.5,
            help="Seconds a child gets to stop before SIGKILL (a worker still running then "
            "prints its threads' stacks first).",
        ),
    ] = 10.0,
    ready_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the API to be ready.")
    ] = 120.0,
    new_token: Annotated[
        bool,
        typer.Option(
            "--new-token", help="With --demo: a new API token (the earlier one is revoked)."
        ),
    ] = False,
) -> None:
    """Run the whole stack on this machine: API, worker, beat, Flower (and Redis, SQLite).

    Without ORCH_REDIS_URL a redis-server is started on a free loopback port; without
    ORCH_DATABASE_URL a SQLite file in ORCH_DATA_DIR (default ./var) is used. The database is
    migrated first. Ctrl-C stops everything. The banner (URLs, passwords, what to try) comes
    once the start-up logs settle; press Enter, or send SIGUSR1, to see it again.

    With --demo, the API URL, an admin token and the broker URL are written to
    ORCH_DATA_DIR/demo.env (mode 0600) for a shell to source; the token stays the same from one
    run to the next unless --new-token.

    Example: hsts-orchestrator up --demo
    """
    from orchestrator.cli.stack import run_stack

    raise typer.Exit(
        run_stack(
            demo=demo,
            host=host,
            port=port,
            flower_port=flower_port,
            workers=workers,
            grace=grace,
            ready_timeout=ready_timeout,
            new_token=new_token,
        )
    )
