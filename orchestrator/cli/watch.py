"""``jobs watch``: follow one job to its end; the exit status tells the outcome."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Protocol

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from orchestrator.cli.client import segment
from orchestrator.cli.console import human_bytes, human_rate, out, say_error
from orchestrator.domain import units

# Exit status per end state: scripts can tell a failed job from a CLI that could not ask.
OUTCOME_EXIT = {"completed": 0, "failed": 3, "canceled": 4, "needs_attention": 5}
PROGRESS_LINE_SECONDS = 2.0  # without a terminal: a progress line at most this often


class JobReader(Protocol):
    """What watching needs: GET a path, get JSON back (ApiClient)."""

    def get(self, path: str, **params: Any) -> Any: ...


def _look(client: JobReader, path: str) -> dict[str, Any]:
    job: dict[str, Any] = client.get(path)
    return job


def watch_job(client: JobReader, job_id: str, *, interval: float = 1.0) -> int:
    """Follow the job until it ends; print the outcome; return the exit status."""
    path = f"/api/v1/jobs/{segment(job_id)}"
    if out.is_terminal:
        job = _follow_live(client, path, interval)
    else:
        job = _follow_lines(client, path, interval)
    return report_outcome(job)


def _ended(job: dict[str, Any]) -> bool:
    return job["state"] in OUTCOME_EXIT


def _follow_live(client: JobReader, path: str, interval: float) -> dict[str, Any]:
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<15}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]:>11}"),
        TextColumn("eta {task.fields[eta]:>6}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=out, transient=False) as progress:
        task = progress.add_task("", total=None, rate="-", eta="-")
        while True:
            job = _look(client, path)
            total = job.get("bytes_expected")
            progress.update(
                task,
                description=job["state"],
                completed=job.get("bytes_transferred") or 0,
                total=total if total else None,
                rate=human_rate(job.get("rate_kbps")),
                eta=_eta(job),
            )
            if _ended(job):
                if job["state"] == "completed" and total:
                    progress.update(task, completed=total)
                return job
            time.sleep(interval)


def _follow_lines(client: JobReader, path: str, interval: float) -> dict[str, Any]:
    state = None
    last_line = 0.0
    last_bytes = -1
    while True:
        job = _look(client, path)
        done = job.get("bytes_transferred") or 0
        if job["state"] != state:
            state = job["state"]
            out.print(f"{job['id']}: {state}", markup=False)
        elif done != last_bytes and time.monotonic() - last_line >= PROGRESS_LINE_SECONDS:
            out.print(f"{job['id']}: {state} {_progress_text(job)}", markup=False)
            last_line, last_bytes = time.monotonic(), done
        if _ended(job):
            return job
        time.sleep(interval)


def _eta(job: dict[str, Any]) -> str:
    seconds = job.get("eta_seconds")
    return "-" if seconds is None else f"{seconds:.0f} s"


def _progress_text(job: dict[str, Any]) -> str:
    done = job.get("bytes_transferred") or 0
    total = job.get("bytes_expected")
    text = human_bytes(done) + (f" / {human_bytes(total)}" if total else "")
    return f"{text} at {human_rate(job.get('rate_kbps'))}, eta {_eta(job)}"


def _duration(job: dict[str, Any]) -> str:
    try:
        start = datetime.fromisoformat(job["created_at"])
        end = datetime.fromisoformat(job["finished_at"])
    except (KeyError, TypeError, ValueError):
        return ""
    return f" in {(end - start).total_seconds():.1f} s"


def report_outcome(job: dict[str, Any]) -> int:
    """Print how the job ended (the reason when it did not complete); its exit status."""
    state = job["state"]
    if state == "completed":
        files = job.get("files_completed") or 0
        moved = job.get("bytes_transferred") or 0
        attempts = job.get("attempt_list") or [{}]
        kept = job.get("files_skipped", attempts[-1].get("files_skipped")) or 0
        what = units.moved(files, moved, kept)
        out.print(f"job {job['id']} completed: {what}{_duration(job)}", markup=False)
        return 0
    text = job.get("error_text") or ""
    reason = job.get("reason") or text or "no reason recorded"
    code = job.get("error_code")
    node = ""
    if code is not None and not (text and text in reason):
        node = f" (node error {code}{': ' + text if text else ''})"
    say_error(f"job {job['id']} {state.replace('_', ' ')}: {reason}{node}")
    return OUTCOME_EXIT[state]
