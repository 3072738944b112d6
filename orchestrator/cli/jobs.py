"""``hsts-orchestrator jobs``: submit, list, show, cancel, retry and watch jobs over the API."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from orchestrator.cli.batches import Line, read_jobs, send_jobs
from orchestrator.cli.client import DEFAULT_API, ApiClient, ApiToken, ApiUrl, segment
from orchestrator.cli.console import err, human_bytes, human_rate, out, say_warning, usage, when
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
from orchestrator.domain.deadlines import BadDeadline, parse_deadline
from orchestrator.domain.states import JobState

app = typer.Typer(
    help="Submit transfers between registered nodes and follow them (over the REST API).\n\n"
    "Example: hsts-orchestrator jobs submit --from node-a:outgoing --to node-b:incoming --watch",
    no_args_is_help=True,
)


class Overwrite(StrEnum):
    """What the destination does with a file that already exists."""

    never = "never"
    always = "always"
    diff = "diff"
    older = "older"
    diff_older = "diff+older"


class Checksum(StrEnum):
    """A file checksum the node computes for every file it sends."""

    md5 = "md5"
    sha1 = "sha1"
    sha256 = "sha256"
    sha384 = "sha384"
    sha512 = "sha512"


class FilesOutput(StrEnum):
    """How ``jobs files`` prints."""

    table = "table"
    json = "json"
    csv = "csv"


FILES_PAGE = 1000
FILE_COLUMNS = ("attempt", "path", "size", "status", "checksum_type", "checksum")

JobId = Annotated[str, typer.Argument(help="The job id.", show_default=False)]


def parse_source(text: str) -> tuple[str, list[str]]:
    """'node-a:media/a,media/b' -> ('node-a', ['media/a', 'media/b'])."""
    node, sep, rest = text.partition(":")
    paths = [p.strip() for p in rest.split(",") if p.strip()]
    if not sep or not node.strip() or not paths:
        usage(f"--from {text!r}: expected NODE:PATH[,PATH...], e.g. node-a:outgoing")
    return node.strip(), paths


def parse_destination(text: str) -> tuple[str, str]:
    """'node-b:incoming' -> ('node-b', 'incoming')."""
    node, sep, path = text.partition(":")
    if not sep or not node.strip() or not path.strip():
        usage(f"--to {text!r}: expected NODE:PATH, e.g. node-b:incoming")
    return node.strip(), path.strip()


def parse_labels(items: list[str]) -> dict[str, str]:
    """['team=red', 'ticket=42'] -> {'team': 'red', 'ticket': '42'}."""
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            usage(f"--label {item!r}: expected KEY=VALUE, e.g. team=media")
        labels[key.strip()] = value
    return labels


@app.command()
def submit(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Source node and path(s) under its root: NODE:PATH[,PATH...].",
            show_default=False,
        ),
    ],
    destination: Annotated[
        list[str],
        typer.Option(
            "--to",
            metavar="NODE:PATH",
            help="Destination node and folder: NODE:PATH. Give it 2 to 16 times for a fan-out "
            "(one transfer to each; the job completes when all do).",
            show_default=False,
        ),
    ],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    rate: Annotated[
        int | None, typer.Option("--rate", min=1, help="Target rate in kbps.", show_default=False)
    ] = None,
    priority: Annotated[int, typer.Option(min=-100, max=100, help="Higher is admitted first.")] = 0,
    overwrite: Annotated[
        Overwrite | None,
        typer.Option(help="Policy for existing files (node default: diff).", show_default=False),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(min=1, max=20, help="Node transfers to try (default 3).", show_default=False),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE, repeatable.")
    ] = None,
    checksum: Annotated[
        Checksum | None,
        typer.Option(
            help="Have the node report each file's checksum; the job stores them "
            "(see `jobs files`).",
            show_default=False,
        ),
    ] = None,
    require_checksums: Annotated[
        bool,
        typer.Option(
            "--require-checksums",
            help="A file the node reports without a checksum makes the job needs_attention.",
        ),
    ] = False,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Submitting again with the same key returns the first job."),
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(
            help="Done by: a time with its zone (2026-12-01T06:00Z) or a duration from now "
            "(2h, 90m). A deadline the link's measured rate cannot meet is warned about.",
            show_default=False,
        ),
    ] = None,
    reject_late: Annotated[
        bool,
        typer.Option(
            "--reject-late",
            help="Refuse the job instead of warning when it would miss its --deadline.",
        ),
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the job id.")] = False,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="The destination node runs the transfer and fetches the files (for a source "
            "that cannot open connections to the destination). Default: the source pushes.",
        ),
    ] = False,
) -> None:
    """Queue a transfer of paths on one node into a folder of another.

    Example: hsts-orchestrator jobs submit --from node-a:outgoing --to node-b:incoming --watch

    Pull mode (node-b fetches from node-a): add --pull.
    Example: hsts-orchestrator jobs submit --from node-a:big --to node-b:in --deadline 2h
    With --checksum sha256 the job ends once every file's checksum is stored: list them with
    `jobs files JOB`.
    Fan-out: hsts-orchestrator jobs submit --from a:/x --to b:/y --to c:/z

    With --watch the exit status is the job's outcome (see `jobs watch`).
    """
    source_node, source_paths = parse_source(source)
    targets = [parse_destination(text) for text in destination]
    options: dict[str, Any] = {}
    if rate is not None:
        options["target_rate_kbps"] = rate
    if overwrite is not None:
        options["overwrite"] = overwrite.value
    if checksum is not None:
        options["file_checksum"] = checksum.value
    if require_checksums:
        options["require_checksums"] = True
    body: dict[str, Any] = {
        "source_node": source_node,
        "source_paths": source_paths,
        **where_to(targets),
        "options": options,
        "priority": priority,
        "labels": parse_labels(label or []),
    }
    if pull:
        body["mode"] = "pull"
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    if deadline is not None:
        try:
            body["deadline"] = parse_deadline(deadline, datetime.now(UTC)).isoformat()
        except BadDeadline as exc:
            usage(f"--deadline {exc}")
        body["deadline_policy"] = "reject" if reject_late else "warn"
    elif reject_late:
        usage("--reject-late needs a --deadline")
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    with ApiClient(api, token) as client:
        job = client.post("/api/v1/jobs", body, headers=headers)
        if quiet:
            out.print(job["id"], markup=False)
        else:
            out.print(
                f"job {job['id']} {job['state']}: {job['source_node']}:"
                f"{','.join(job['source_paths'])} -> {destinations_text(job)}"
                + (f" (pulled by {job['runs_on']})" if job.get("mode") == "pull" else ""),
                markup=False,
            )
        for warning in job.get("warnings") or []:
            say_warning(warning)
        if watch:
            raise typer.Exit(watch_job(client, job["id"]))


@app.command("submit-file")
def submit_file(
    path: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="JSON Lines: one job per line, the body POST /api/v1/jobs takes, with an "
            "optional idempotency_key; - reads standard input.",
            show_default=False,
        ),
    ],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the ids of the jobs queued.")
    ] = False,
) -> None:
    """Queue many jobs from a file, 100 per request (POST /api/v1/jobs/batch).

    Example line:
    {"source_node": "node-a", "source_paths": ["outgoing/a.mxf"], "destination_node":
    "node-b", "destination_path": "incoming", "idempotency_key": "ingest-a"}

    Each job answers for itself: queued, already known by its idempotency_key, or refused
    (with the field and the reason). Give every line an idempotency_key and the file can be
    sent again after any failure: what was queued is not queued twice. Exit status 0 when
    every job is queued or known, 1 when one was refused, 2 for a file it cannot read or a
    line the API cannot take at all (nothing from that line's batch on is sent).
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        usage(f"cannot read {path}: {exc.strerror or type(exc).__name__}")
    except UnicodeDecodeError:
        usage(f"cannot read {path}: not UTF-8 text (JSON Lines are)")
    jobs = read_jobs(text)

    def report(line: Line, result: dict[str, Any]) -> None:
        job_id, code = result.get("job_id"), int(result["status"])
        if quiet:
            if job_id:
                out.print(job_id, markup=False)
        elif job_id:
            said = "queued" if code == 202 else "already queued (same idempotency_key)"
            out.print(f"line {line.number}: job {job_id} {said}", markup=False)
        field = result.get("field")
        if not job_id:
            reason = f"{field}: {result.get('error')}" if field else str(result.get("error"))
            err.print(f"line {line.number}: refused: {reason}", markup=False, soft_wrap=True)
        for warning in result.get("warnings") or []:
            say_warning(f"line {line.number}: {warning}")

    with ApiClient(api, token) as client:
        counts = send_jobs(client, jobs, report)
    refused = sum(n for code, n in counts.items() if code not in (200, 202))
    if not quiet:
        out.print(f"{counts[202]} queued, {counts[200]} already known, {refused} refused")
    if refused:
        raise typer.Exit(1)


def where_to(targets: list[tuple[str, str]]) -> dict[str, Any]:
    """The body's destination fields: one destination, or a fan-out's list."""
    if len(targets) == 1:
        (node, path), *_ = targets
        return {"destination_node": node, "destination_path": path}
    return {"destinations": [{"node": node, "path": path} for node, path in targets]}


def destinations_text(job: dict[str, Any]) -> str:
    """'node-b:/in' or, for a fan-out, 'node-b:/in, node-c:/in'."""
    places = job.get("destinations") or [
        {"node": job["destination_node"], "path": job["destination_path"]}
    ]
    return ", ".join(f"{d['node']}:{d['path'] or '/'}" for d in places)


@app.command("list")
def list_jobs(
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    state: Annotated[
        list[JobState] | None,
        typer.Option("--state", help="Only jobs in this state (repeatable).", show_default=False),
    ] = None,
    node: Annotated[
        str | None, typer.Option(help="Only jobs from or to this node.", show_default=False)
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Only jobs with this KEY=VALUE label.", show_default=False)
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(help="Only the runs of this schedule (its id).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many jobs.")] = 20,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """List jobs, newest first.

    Example: hsts-orchestrator jobs list --state failed --node node-a
    """
    if label is not None:
        parse_labels([label])
    params: dict[str, Any] = {"node": node, "label": label, "schedule": schedule, "limit": limit}
    if state:
        params["state"] = [s.value for s in state]
    with ApiClient(api, token) as client:
        page = client.get("/api/v1/jobs", **params)
    if output is Output.json:
        print_json(page)
        return
    items = page["items"]
    if not items:
        out.print("no jobs")
        return
    print_rows(
        JOB_COLUMNS,
        (
            (
                job["id"] if wide else job["id"][:SHORT_ID],
                _state_text(job["state"]),
                f"{job['source_node']}:{','.join(job['source_paths'])}",
                f"{job['destination_node']}:{job['destination_path'] or '/'}",
                _progress(job, short=not wide),
                when(job["created_at"]),
                job.get("reason") or job.get("waiting_reason") or "",
            )
            for job in items
        ),
        wide=wide,
    )
    if page.get("next_cursor"):
        out.print(f"(more: raise --limit above {limit} to see them)", style="dim")


SHORT_ID = 8  # what a table shows of a job id; any 8 characters that start one will do
JOB_COLUMNS = (
    Column("ID"),
    Column("STATE"),
    Column("FROM", cut=True),
    Column("TO", cut=True),
    Column("PROGRESS"),
    Column("CREATED", wide_only=True),
    Column("NOTE", cut=True),
)


@app.command()
def show(
    job_id: JobId,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: OutputOpt = Output.table,
    wide: WideOpt = False,
) -> None:
    """Show a job: state, progress, why it waits or failed, attempts and events.

    Example: hsts-orchestrator jobs show 3f0c1a2b
    """
    with ApiClient(api, token) as client:
        job = client.get(f"/api/v1/jobs/{segment(job_id)}")
    if output is Output.json:
        print_json(job)
        return
    print_job(job, wide=wide)


@app.command()
def files(
    job_id: JobId,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    output: Annotated[
        FilesOutput, typer.Option("--output", "-o", help="table, json or csv (for a file).")
    ] = FilesOutput.table,
) -> None:
    """List a job's files with the checksums its node reported (jobs submitted with
    --checksum or --require-checksums; stored when the transfer completed).

    Example: hsts-orchestrator jobs files 3f0c1a2b -o csv > checksums.csv
    """
    items: list[dict[str, Any]] = []
    with ApiClient(api, token) as client:
        offset: int | None = 0
        while offset is not None:
            page = client.get(
                f"/api/v1/jobs/{segment(job_id)}/files", offset=offset, limit=FILES_PAGE
            )
            items += page["items"]
            offset = page["next_offset"]
    if output is FilesOutput.json:
        print_json(items)
    elif output is FilesOutput.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(FILE_COLUMNS)
        writer.writerows(
            [item[c] if item[c] is not None else "" for c in FILE_COLUMNS] for item in items
        )
    elif not items:
        out.print(
            "no files stored: the job did not ask for checksums (jobs submit --checksum sha256),"
            " or its transfer has not completed yet"
        )
    else:
        print_rows(
            [Column("path", cut=True), Column("size"), Column("checksum")],
            (
                (
                    item["path"],
                    human_bytes(item["size"]),
                    f"{item['checksum_type']}:{item['checksum']}" if item["checksum"] else "none",
                )
                for item in items
            ),
            wide=True,
        )


@app.command()
def cancel(job_id: JobId, api: ApiUrl = DEFAULT_API, token: ApiToken = None) -> None:
    """Cancel a job (a transfer already on the node is canceled there).

    Example: hsts-orchestrator jobs cancel 3f0c...
    """
    with ApiClient(api, token) as client:
        job = client.post(f"/api/v1/jobs/{segment(job_id)}/cancel")
    note = " (cancel sent to the node)" if job["state"] != JobState.CANCELED else ""
    out.print(f"job {job['id']} {job['state']}{note}", markup=False)


@app.command()
def pause(job_id: JobId, api: ApiUrl = DEFAULT_API, token: ApiToken = None) -> None:
    """Pause a job's transfer on the node that runs it (resume it with `jobs resume`).

    Example: hsts-orchestrator jobs pause 3f0c...
    """
    _tell_node(job_id, "pause", api, token)


@app.command()
def resume(job_id: JobId, api: ApiUrl = DEFAULT_API, token: ApiToken = None) -> None:
    """Resume a paused job's transfer.

    Example: hsts-orchestrator jobs resume 3f0c...
    """
    _tell_node(job_id, "resume", api, token)


def _tell_node(job_id: str, action: str, api: str, token: str | None) -> None:
    with ApiClient(api, token) as client:
        job = client.post(f"/api/v1/jobs/{segment(job_id)}/{action}")
    out.print(f"job {job['id']} {job['state']} ({action} sent to the node)", markup=False)


@app.command()
def rate(
    job_id: JobId,
    kbps: Annotated[
        int,
        typer.Argument(
            min=1,
            max=100_000_000,
            help="The new target rate in kilobits per second.",
            show_default=False,
        ),
    ],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Change a job's target rate; a running transfer changes at once on the node.

    Example: hsts-orchestrator jobs rate 3f0c1a2b 50000
    """
    with ApiClient(api, token) as client:
        job = client.post(f"/api/v1/jobs/{segment(job_id)}/rate", {"target_rate_kbps": kbps})
    out.print(f"job {job['id']} {job['state']}: target rate {human_rate(kbps)}", markup=False)


@app.command()
def priority(
    job_id: JobId,
    value: Annotated[
        int,
        typer.Argument(
            min=-100,
            max=100,
            help="-100 (last) to 100 (first) among waiting jobs.",
            show_default=False,
        ),
    ],
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
) -> None:
    """Change a job's priority (it orders the jobs that wait for a slot).

    Example: hsts-orchestrator jobs priority 3f0c1a2b 50
    """
    with ApiClient(api, token) as client:
        job = client.post(f"/api/v1/jobs/{segment(job_id)}/priority", {"priority": value})
    out.print(f"job {job['id']} {job['state']}: priority {value}", markup=False)


@app.command()
def retry(
    job_id: JobId,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the job until it ends.")] = False,
) -> None:
    """Queue a failed (or flagged) job again with a fresh attempt budget.

    Example: hsts-orchestrator jobs retry 3f0c... --watch
    """
    with ApiClient(api, token) as client:
        job = client.post(f"/api/v1/jobs/{segment(job_id)}/retry")
        out.print(f"job {job['id']} {job['state']}", markup=False)
        if watch:
            raise typer.Exit(watch_job(client, job["id"]))


@app.command()
def watch(
    job_id: JobId,
    api: ApiUrl = DEFAULT_API,
    token: ApiToken = None,
    interval: Annotated[
        float, typer.Option(min=0.1, max=60, help="Seconds between two looks.")
    ] = 1.0,
) -> None:
    """Follow a job with a live progress bar (bytes, rate, ETA) until it ends.

    Exit status: 0 completed, 3 failed, 4 canceled, 5 needs attention (the reason is
    printed), 1 if the API cannot be asked, 2 for bad input.

    Example: hsts-orchestrator jobs watch 3f0c... && echo copied
    """
    with ApiClient(api, token) as client:
        raise typer.Exit(watch_job(client, job_id, interval=interval))


# -- rendering ------------------------------------------------------------------------------

_STATE_STYLE = {
    "completed": "green",
    "failed": "red",
    "canceled": "yellow",
    "needs_attention": "magenta",
    "running": "cyan",
}


def _state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLE.get(state, ""))


def _progress(job: dict[str, Any], *, short: bool = False) -> str:
    done = job.get("bytes_transferred") or 0
    total = job.get("bytes_expected")
    if total and short and job.get("state") != "completed":
        return f"{100 * done / total:.0f}% of {human_bytes(total)}"
    if job.get("progress"):
        return str(job["progress"])  # the API's words: "up to date (6 files already there)"
    if total:
        return f"{human_bytes(done)} / {human_bytes(total)} ({100 * done / total:.0f}%)"
    return human_bytes(done) if done else ""


def _eta(job: dict[str, Any]) -> str:
    """When the job should end, and the seconds left at its current rate while it runs."""
    text = when(job.get("eta")) if job.get("eta") else "-"
    if job.get("eta_seconds") is not None:
        text += f" ({job['eta_seconds']:.0f} s left)"
    return text


def _deadline(job: dict[str, Any]) -> str:
    """The deadline, and whether the job is expected to miss it or did."""
    text = when(job["deadline"])
    if job.get("deadline_missed"):
        return text + " (missed)"
    return text + (" (at risk: expected after it)" if job.get("at_risk") else "")


def print_job(job: dict[str, Any], *, wide: bool = False) -> None:
    """A job as people read it."""
    rows: list[tuple[str, str | Text]] = [
        ("job", job["id"]),
        ("state", _state_text(job["state"])),
        ("from", f"{job['source_node']}:{', '.join(job['source_paths'])}"),
        ("to", destinations_text(job)),
        *([("mode", f"pulled by {job['runs_on']}")] if job.get("mode") == "pull" else []),
        ("progress", _progress(job) or "-"),
        (
            "files",
            f"{job['files_completed']}"
            + (f" / {job['files_expected']}" if job.get("files_expected") is not None else ""),
        ),
        ("rate", human_rate(job.get("rate_kbps"))),
        ("eta", _eta(job)),
        ("attempts", f"{job['attempts']} of {job['max_attempts']}"),
        ("priority", str(job["priority"])),
        ("created", when(job["created_at"])),
        ("finished", when(job.get("finished_at"))),
    ]
    if job.get("labels"):
        rows.append(("labels", ", ".join(f"{k}={v}" for k, v in job["labels"].items())))
    if job.get("options"):
        rows.append(("options", ", ".join(f"{k}={v}" for k, v in job["options"].items())))
    if job.get("deadline"):
        rows.append(("deadline", _deadline(job)))
    if job.get("waiting_reason"):
        rows.append(("waiting", job["waiting_reason"]))
    if job.get("allocation_note"):
        rows.append(("link budget", job["allocation_note"]))
    if job.get("reason"):
        rows.append(("reason", job["reason"]))
    if job.get("error_code") is not None or job.get("error_text"):
        rows.append(("node error", f"{job.get('error_code')}: {job.get('error_text') or ''}"))
    if job.get("parent_id"):
        rows.append(("part of", f"fan-out job {job['parent_id']}"))
    print_fields(rows, wide=wide)
    if destinations := job.get("destinations"):
        print_rows(
            DESTINATION_COLUMNS,
            (
                (
                    f"{d['node']}:{d['path'] or '/'}",
                    d["job_id"],
                    _state_text(d["state"]),
                    human_bytes(d["bytes"]),
                    str(d["files"]),
                    d.get("error") or "",
                )
                for d in destinations
            ),
            wide=wide,
            title="destinations",
        )
    attempts = job.get("attempt_list") or []
    if attempts:
        print_rows(
            ATTEMPT_COLUMNS,
            (
                (
                    str(a["number"]),
                    a.get("remote_id") or "-",
                    a["status"],
                    human_bytes(a.get("bytes_transferred")),
                    _attempt_error(a),
                    when(a.get("ended_at")),
                )
                for a in attempts
            ),
            wide=wide,
            title="attempts",
        )
    events = job.get("events") or []
    if events:
        print_rows(
            EVENT_COLUMNS,
            ((when(e["at"]), e["kind"], e["message"]) for e in events),
            wide=wide,
            title="events",
        )


def _attempt_error(attempt: dict[str, Any]) -> str:
    if not attempt.get("error_code"):
        return ""
    return f"{attempt['error_code']}: {attempt.get('error_text') or ''}"


ATTEMPT_COLUMNS = (
    Column("#"),
    Column("NODE TRANSFER", cut=True),
    Column("STATUS"),
    Column("BYTES"),
    Column("ERROR", prose=True),
    Column("ENDED"),
)
DESTINATION_COLUMNS = (
    Column("DESTINATION", cut=True),
    Column("JOB", cut=True),
    Column("STATE"),
    Column("BYTES"),
    Column("FILES"),
    Column("ERROR", prose=True),
)
EVENT_COLUMNS = (Column("AT"), Column("KIND"), Column("MESSAGE", prose=True))
