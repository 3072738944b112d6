"""Many jobs from one file: JSON Lines, sent 100 at a time to POST /api/v1/jobs/batch."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from orchestrator.cli.client import ApiClient
from orchestrator.cli.console import CliError, err, usage

BATCH = 100  # jobs per request: the API's limit
_ITEM = re.compile(r"^jobs\.(\d+)\.?")  # a refused batch names its job by place: jobs.3.field


@dataclass(frozen=True)
class Line:
    """One job of the file: its line number and the body POST /api/v1/jobs takes."""

    number: int
    body: dict[str, Any]


def read_jobs(text: str) -> list[Line]:
    """The file's jobs with their line numbers (blank lines and # comments skipped); a line
    that is not a JSON object stops everything before anything is sent."""
    jobs: list[Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            body = json.loads(stripped)
        except json.JSONDecodeError as exc:
            usage(f"line {number}: not JSON ({exc.msg} at column {exc.colno}); nothing was sent")
        if not isinstance(body, dict):
            usage(f"line {number}: a job is a JSON object, as POST /api/v1/jobs takes it")
        jobs.append(Line(number, body))
    if not jobs:
        usage("no job in the file: one JSON object per line, as POST /api/v1/jobs takes it")
    return jobs


def send_jobs(
    client: ApiClient, jobs: list[Line], report: Callable[[Line, dict[str, Any]], None]
) -> Counter[int]:
    """Send the jobs in batches, ``report`` each one's result; the count of each status.

    A batch the API refuses whole (a body it cannot take) stops the run with the line it
    names and what the batches before it queued."""
    counts: Counter[int] = Counter()
    with Progress(
        TextColumn("queueing jobs"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=len(jobs) <= BATCH or not err.is_terminal,
    ) as progress:
        task = progress.add_task("jobs", total=len(jobs))
        for start in range(0, len(jobs), BATCH):
            chunk = jobs[start : start + BATCH]
            try:
                answer = client.post("/api/v1/jobs/batch", {"jobs": [j.body for j in chunk]})
            except CliError as exc:
                raise _refused_whole(exc, chunk, counts) from None
            for result in answer["results"]:
                counts[int(result["status"])] += 1
                report(chunk[int(result["index"])], result)
            progress.advance(task, len(chunk))
    return counts


def _refused_whole(exc: CliError, chunk: list[Line], counts: Counter[int]) -> CliError:
    """The API's refusal of a whole batch, said by the file's line, with what was sent."""
    message = exc.message
    found = _ITEM.match(message)
    if found and int(found.group(1)) < len(chunk):
        message = f"line {chunk[int(found.group(1))].number}: {message[found.end() :]}"
    done = sum(counts.values())
    sent = (
        f"the {done} job(s) before line {chunk[0].number} were sent ({counts[202]} queued); "
        "none from there on"
        if done
        else "nothing was queued"
    )
    return CliError(f"{message} ({sent})", exc.code, status=exc.status)
