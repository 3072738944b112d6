"""``hsts-orchestrator nodes link-budget``: the rate budget of a node pair, shared live by the
transfers on it (deadlines first, then by priority)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from orchestrator.cli.client import DEFAULT_API, ApiClient, ApiToken, ApiUrl, segment
from orchestrator.cli.console import out, when
from orchestrator.cli.output import Column, Output, OutputOpt, print_json, print_rows

app = typer.Typer(
    help="Give a link (source node → destination node) a rate budget in Mbps. After each poll "
    "the transfers on it share the budget: jobs with a deadline get the rate it needs first "
    "(highest priority first), the rest is shared by priority; lower-priority work is paused "
    "while higher-priority deadlines need the whole link, and resumed after. Each job's events "
    "and page say why it runs at its rate or is paused.\n\n"
    "Example: hsts-orchestrator nodes link-budget set paris london 100",
    no_args_is_help=True,
)

SourceArg = Annotated[str, typer.Argument(help="The source node's name.", show_default=False)]
DestinationArg = Annotated[
    str, typer.Argument(help="The destination node's name.", show_default=False)
]


def _path(source: str, destination: str) -> str:
    return f"/api/v1/links/{segment(source)}/{segment(destination)}"


def _mbps(value: float) -> str:
    return f"{value:g} Mbps"


@app.command("set")
def set_budget(
    source: SourceArg,
    destination: DestinationArg,
    mbps: Annotated[
        float,
        typer.Argument(help="The budget in megabits per second (above 0).", show_default=False),
    ],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Set (or change) the link's budget; it applies from the next poll.

    Example: hsts-orchestrator nodes link-budget set paris london 100
    """
    with ApiClient(api, token) as client:
        shown = client.call("PUT", _path(source, destination), json={"mbps": mbps})
    out.print(
        f"link {shown['source']} → {shown['destination']}: budget {_mbps(shown['mbps'])}, "
        "shared by its transfers from the next poll",
        markup=False,
    )


@app.command("list")
def list_budgets(
    api: ApiUrl = DEFAULT_API, token: ApiToken = None, output: OutputOpt = Output.table
) -> None:
    """Links with a budget: the budget, the rate given out now, and transfers paused for it.

    Example: hsts-orchestrator nodes link-budget list
    """
    with ApiClient(api, token) as client:
        budgets: list[dict[str, Any]] = client.get("/api/v1/links")
    if output is Output.json:
        print_json(budgets)
        return
    if not budgets:
        out.print("no link has a budget (set one: hsts-orchestrator nodes link-budget set --help)")
        return
    print_rows(
        (
            Column("SOURCE"),
            Column("DESTINATION"),
            Column("BUDGET"),
            Column("ALLOCATED"),
            Column("TRANSFERS"),
            Column("PAUSED"),
            Column("SET BY"),
            Column("SET AT"),
        ),
        (
            (
                b["source"],
                b["destination"],
                _mbps(b["mbps"]),
                _mbps(b["allocated_mbps"]),
                str(b["transfers"]),
                str(b["paused"]),
                b.get("updated_by") or "-",
                when(b.get("updated_at")),
            )
            for b in budgets
        ),
        wide=True,
    )


@app.command("clear")
def clear_budget(
    source: SourceArg,
    destination: DestinationArg,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Remove the link's budget: transfers it paused are resumed at the next poll.

    Example: hsts-orchestrator nodes link-budget clear paris london
    """
    with ApiClient(api, token) as client:
        client.delete(_path(source, destination))
    out.print(f"link {source} → {destination}: no budget; its transfers run at their own rates")
