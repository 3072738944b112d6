"""``hsts-orchestrator schedules``: scheduled replication (over the API; ``apply`` on the DB)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from orchestrator.cli.client import DEFAULT_API, ApiClient, ApiToken, ApiUrl, segment
from orchestrator.cli.console import CliError, fail, human_bytes, out, seconds_of, usage, when
from orchestrator.cli.jobs import (
    SHORT_ID,
    Overwrite,
    destinations_text,
    parse_destination,
    parse_labels,
    parse_source,
    where_to,
)
from orchestrator.cli.output import (
    Column,
    Output,
    OutputOpt,
    WideOpt,
    print_fields,
    print_json,
    print_rows,
)
from orchestrator.cli.watch import watch_job

app = typer.Typer(
    help="Replicate a folder of one node to another on a schedule, moving only what changed.\n\n"
    "Example: hsts-orchestrator schedules add media-hourly --from paris:media/daily "
    "--to london:replicas --cron '0 * * * *' --tz Europe/Paris",
    no_args_is_help=True,
)


class Overlap(StrEnum):
    """What a slot does while the previous run still goes."""

    skip = "skip"
    queue = "queue"


Id = Annotated[str, typer.Argument(help="The schedule's id.", show_default=False)]
_HEALTH_STYLE = {
    "ok": "green",
    "failing": "bold red",
    "stalled": "yellow",
    "disabled": "dim",
    "never run": "yellow",
}


def parse_every(text: str) -> int:
    """'15m' -> 900, '2h' -> 7200, '90' -> 90 (seconds)."""
    return seconds_of(text, "--every")


@app.command()
def add(
    schedule_id: Id,
    source: Annotated[
        str,
        typer.Option("--from", help="Source NODE:PATH[,PATH...].", show_default=False),
    ],
    destination: Annotated[
        list[str],
        typer.Option(
            "--to",
            metavar="NODE:PATH",
            help="Destination NODE:FOLDER; 2 to 16 of them make each run a fan-out job.",
            show_default=False,
        ),
    ],
    cron: Annotated[
        str | None,
        typer.Option(help="Cron expression (5 fields), e.g. '0 * * * *'.", show_default=False),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="Interval instead of cron: 90s, 15m, 1h, 1d.", show_default=False),
    ] = None,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the cron.")] = "UTC",
    overlap: Annotated[
        Overlap, typer.Option(help="While the last run goes on: skip the slot, or queue it.")
    ] = Overlap.skip,
    overwrite: Annotated[
        Overwrite, typer.Option(help="diff (default) moves only new and changed files.")
    ] = Overwrite.diff,
    rate: Annotated[
        int | None, typer.Option(min=1, help="Target rate in kbps.", show_default=False)
    ] = None,
    priority: Annotated[int, typer.Option(min=-100, max=100, help="Higher runs first.")] = 0,
    description: Annotated[str, typer.Option(help="What the schedule is for.")] = "",
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="The destination node runs each transfer and fetches the files (for a "
            "source that cannot open connections to the destination).",
        ),
    ] = False,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Create a schedule; its first run is its first slot from now (or: schedules run ID).

    Example: hsts-orchestrator schedules add nightly --from node-a:outgoing
    --to node-b:mirror --cron '30 2 * * *' --tz Europe/Paris
    """
    if (cron is None) == (every is None):
        usage("give exactly one of --cron EXPR or --every INTERVAL")
    source_node, source_paths = parse_source(source)
    targets = [parse_destination(text) for text in destination]
    options: dict[str, Any] = {"overwrite": overwrite.value}
    if rate is not None:
        options["target_rate_kbps"] = rate
    body: dict[str, Any] = {
        "id": schedule_id,
        "description": description,
        "cron": cron,
        "interval_seconds": parse_every(every) if every is not None else None,
        "timezone": tz,
        "source_node": source_node,
        "source_paths": source_paths,
        **where_to(targets),
        "options": options,
        "priority": priority,
        "overlap": overlap.value,
        "enabled": not disabled,
        "labels": parse_labels(label or []),
        "mode": "pull" if pull else "push",
    }
    with ApiClient(api, token) as client:
        try:
            made = client.post("/api/v1/schedules", body)
        except CliError as exc:
            if exc.status == 409:
                fail(
                    f"schedule {schedule_id!r} exists: change it with `hsts-orchestrator "
                    f"schedules change {schedule_id} ...` (see its --help), or pick another id"
                )
            raise
    out.print(
        f"schedule {made['id']} created; next run {when(made['next_run_at'])}; "
        f"preview it with: hsts-orchestrator schedules dry-run {made['id']}",
        markup=False,
    )


@app.command("list")
def list_schedules(
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """Every schedule with its health, last run and next run.

    Example: hsts-orchestrator schedules list
    """
    with ApiClient(api, token) as client:
        page = client.get("/api/v1/schedules")
    if output is Output.json:
        print_json(page)
        return
    items = page["items"]
    if not items:
        out.print("no schedules (create one: hsts-orchestrator schedules add --help)")
        return
    print_rows(
        SCHEDULE_COLUMNS,
        (
            (
                item["id"],
                Text(item["health"], style=_HEALTH_STYLE.get(item["health"], "")),
                _timing(item),
                f"{item['source_node']}:{','.join(item['source_paths'])}",
                destinations_text(item),
                _last_run(item["last_run"]),
                when(item["next_run_at"]),
                _streak(item),
            )
            for item in items
        ),
        wide=wide,
    )


SCHEDULE_COLUMNS = (
    Column("ID", cut=True),
    Column("HEALTH"),
    Column("WHEN", cut=True),
    Column("FROM", cut=True),
    Column("TO", cut=True),
    Column("LAST RUN", wide_only=True),
    Column("NEXT RUN"),
    Column("STREAK", wide_only=True),
)
RUN_COLUMNS = (
    Column("RUN"),
    Column("TRIGGER"),
    Column("STATE"),
    Column("STARTED"),
    Column("FILES"),
    Column("BYTES"),
    Column("UP TO DATE"),
)


@app.command()
def show(
    schedule_id: Id,
    runs: Annotated[int, typer.Option(min=0, max=500, help="Recent runs to show.")] = 10,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """A schedule and its recent runs: state, files and bytes moved, errors.

    Example: hsts-orchestrator schedules show media-hourly --runs 24
    """
    with ApiClient(api, token) as client:
        item = client.get(f"/api/v1/schedules/{segment(schedule_id)}", runs=runs)
    if output is Output.json:
        print_json(item)
        return
    rows: list[tuple[str, str | Text]] = [
        ("schedule", item["id"]),
        ("health", Text(item["health"], style=_HEALTH_STYLE.get(item["health"], ""))),
        ("when", _timing(item)),
        ("from", f"{item['source_node']}:{', '.join(item['source_paths'])}"),
        ("to", destinations_text(item)),
        *([("mode", "pulled by the destination")] if item["mode"] == "pull" else []),
        ("overwrite", str(item["options"].get("overwrite", "diff"))),
        ("overlap", item["overlap"]),
        ("next run", when(item["next_run_at"])),
        ("streak", _streak(item)),
        ("skipped slots", str(item["skipped_slots"])),
        ("managed by", item["managed_by"]),
    ]
    if item["description"]:
        rows.insert(1, ("about", item["description"]))
    if item["last_error"]:
        rows.append(("last error", Text(item["last_error"], style="red")))
    print_fields(rows, wide=wide)
    if item["runs"]:
        out.print()
        print_rows(
            RUN_COLUMNS,
            (
                (
                    run["job_id"] if wide else run["job_id"][:SHORT_ID],
                    run["trigger"],
                    run["state"],
                    when(run["created_at"]),
                    str(run["files_completed"]),
                    human_bytes(run["bytes_transferred"]),
                    str(run["files_skipped"]),
                )
                for run in item["runs"]
            ),
            wide=wide,
        )


@app.command()
def change(
    schedule_id: Id,
    cron: Annotated[
        str | None, typer.Option(help="A new cron expression.", show_default=False)
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="A new interval (replaces the cron).", show_default=False)
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="The cron's time zone.", show_default=False)
    ] = None,
    source: Annotated[
        str | None, typer.Option("--from", help="Source NODE:PATH[,PATH...].", show_default=False)
    ] = None,
    destination: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            metavar="NODE:PATH",
            help="Destination NODE:FOLDER (repeat it for a fan-out); replaces every destination.",
            show_default=False,
        ),
    ] = None,
    overlap: Annotated[
        Overlap | None, typer.Option(help="skip or queue.", show_default=False)
    ] = None,
    priority: Annotated[
        int | None, typer.Option(min=-100, max=100, help="Higher runs first.", show_default=False)
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="What the schedule is for.", show_default=False)
    ] = None,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Change some of a schedule's settings; a new timing counts its slots from now.

    Example: hsts-orchestrator schedules change media-hourly --every 30m
    """
    if cron is not None and every is not None:
        usage("give at most one of --cron and --every")
    patch: dict[str, Any] = {}
    if cron is not None:
        patch["cron"] = cron
    if every is not None:
        patch["interval_seconds"] = parse_every(every)
    if tz is not None:
        patch["timezone"] = tz
    if source is not None:
        patch["source_node"], patch["source_paths"] = parse_source(source)
    if destination:
        patch.update(where_to([parse_destination(text) for text in destination]))
    if overlap is not None:
        patch["overlap"] = overlap.value
    if priority is not None:
        patch["priority"] = priority
    if description is not None:
        patch["description"] = description
    if not patch:
        usage("nothing to change: give at least one option (see --help)")
    with ApiClient(api, token) as client:
        item = client.call("PATCH", f"/api/v1/schedules/{segment(schedule_id)}", json=patch)
    out.print(
        f"schedule {item['id']} changed: {_timing(item)}; next run {when(item['next_run_at'])}",
        markup=False,
    )


@app.command()
def run(
    schedule_id: Id,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the run until it ends.")] = False,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Start a run now (refused while a run of the schedule is still going).

    Example: hsts-orchestrator schedules run media-hourly --watch
    """
    with ApiClient(api, token) as client:
        job = client.post(f"/api/v1/schedules/{segment(schedule_id)}/run")
        out.print(f"run {job['id']} of {schedule_id} {job['state']}", markup=False)
        if watch:
            raise typer.Exit(watch_job(client, job["id"]))


@app.command("dry-run")
def dry_run(
    schedule_id: Id,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
) -> None:
    """List both nodes and show what the next run would move, with counts and bytes.

    Example: hsts-orchestrator schedules dry-run media-hourly
    """
    with ApiClient(api, token) as client:
        plan = client.post(f"/api/v1/schedules/{segment(schedule_id)}/dry-run")
    if output is Output.json:
        print_json(plan)
        return
    for path in plan["missing_sources"]:
        out.print(f"missing at the source: {path} (the run would fail)", markup=False)
    print_rows(
        (Column(""), Column("FILES"), Column("BYTES")),
        (
            (name, str(plan[key]["files"]), human_bytes(plan[key]["bytes"]))
            for key, name in (
                ("new", "new"),
                ("changed", "changed (size)"),
                ("maybe_changed", "maybe changed (checksum decides)"),
                ("unchanged", "up to date"),
                ("to_move", "would move"),
            )
        ),
        wide=True,
    )
    for planned in plan["files"][:20]:
        out.print(f"  {planned['path']}  {human_bytes(planned['size'])}  ({planned['why']})")
    more = plan["to_move"]["files"] - min(20, len(plan["files"]))
    if more > 0:
        out.print(f"  ... and {more} more (-o json lists up to 1000)")
    if plan["truncated"]:
        out.print("(a side had too many entries: the counts cover the first 100000)")


@app.command()
def enable(schedule_id: Id, api: ApiUrl = DEFAULT_API, token: ApiToken = None) -> None:
    """Switch a schedule on (the slots it missed while off do not run)."""
    _switch(schedule_id, "enable", api, token)


@app.command()
def disable(schedule_id: Id, api: ApiUrl = DEFAULT_API, token: ApiToken = None) -> None:
    """Switch a schedule off (a run under way goes on)."""
    _switch(schedule_id, "disable", api, token)


def _switch(schedule_id: str, verb: str, api: str, token: str | None) -> None:
    with ApiClient(api, token) as client:
        item = client.post(f"/api/v1/schedules/{segment(schedule_id)}/{verb}")
    out.print(f"schedule {item['id']} {verb}d; next run {when(item['next_run_at'])}")


@app.command()
def remove(schedule_id: Id, api: ApiUrl = DEFAULT_API, token: ApiToken = None) -> None:
    """Delete a schedule; its past runs stay (jobs list --schedule ID)."""
    with ApiClient(api, token) as client:
        client.delete(f"/api/v1/schedules/{segment(schedule_id)}")
    out.print(f"schedule {schedule_id} removed", markup=False)


@app.command()
def apply(
    file: Annotated[
        Path,
        typer.Argument(help="A replications.yaml (see config/replications.example.yaml)."),
    ],
) -> None:
    """Make the file's schedules exist as written (on the database; beat does it at start).

    Entries are added or changed; schedules that came from the file and left it are removed;
    schedules made through the API or CLI are left alone, unless the file names their id
    (the file then owns them).

    Example: hsts-orchestrator schedules apply config/replications.yaml
    """
    from sqlalchemy.exc import SQLAlchemyError

    from orchestrator.bootstrap import opened
    from orchestrator.cli.local import database_failure, local_settings
    from orchestrator.services.alerts.rules import known_channels
    from orchestrator.services.schedules.config_file import apply_file

    settings = local_settings()
    try:
        with opened(settings) as ctx:
            result = apply_file(ctx, file, known_channels(settings))
    except SQLAlchemyError as exc:
        fail(database_failure(exc, settings))
    out.print(str(result), markup=False)
    if result.errors:
        fail(f"{len(result.errors)} schedule(s) in {file} could not be applied")


def _timing(item: dict[str, Any]) -> str:
    if item["cron"]:
        return f"cron {item['cron']} {item['timezone']}"
    seconds = int(item["interval_seconds"])
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"every {seconds // size}{unit}"
    return f"every {seconds}s"


def _last_run(run: dict[str, Any] | None) -> str:
    return f"{run['state']} {when(run['created_at'])}" if run else "-"


def _streak(item: dict[str, Any]) -> str:
    if item["failure_streak"]:
        return f"{item['failure_streak']} failed in a row"
    return f"{item['success_streak']} ok in a row" if item["success_streak"] else "-"
