"""``jobs watch`` against a scripted API: the exit status per outcome, the reason on stderr,
live progress bars in a terminal and plain lines in a pipe."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from orchestrator.cli import watch

BASE: dict[str, Any] = {
    "id": "job-1",
    "state": "queued",
    "bytes_transferred": 0,
    "bytes_expected": None,
    "files_completed": 0,
    "rate_kbps": None,
    "eta_seconds": None,
    "reason": None,
    "error_code": None,
    "error_text": None,
    "created_at": "2026-01-01T00:00:00+00:00",
    "finished_at": None,
}


class Scripted:
    """Answers GET /api/v1/jobs/job-1 with the next job of the script (the last one repeats)."""

    def __init__(self, *states: dict[str, Any]) -> None:
        self.answers = [{**BASE, **s} for s in states]
        self.paths: list[str] = []

    def get(self, path: str, **params: Any) -> Any:
        self.paths.append(path)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


RUNNING = {"state": "running", "bytes_transferred": 500_000, "bytes_expected": 1_000_000,
           "rate_kbps": 8000.0, "eta_seconds": 0.5}  # fmt: skip
DONE = {"state": "completed", "bytes_transferred": 1_000_000, "bytes_expected": 1_000_000,
        "files_completed": 3, "finished_at": "2026-01-01T00:00:02+00:00"}  # fmt: skip


@pytest.mark.parametrize(
    ("end", "code", "says"),
    [
        (
            {"state": "failed", "reason": "ascp error 4 (NO_SUCH_FILE): no such file",
             "error_code": 4, "error_text": "no such file"},
            3,
            "error: job job-1 failed: ascp error 4 (NO_SUCH_FILE): no such file",
        ),
        ({"state": "canceled", "reason": "canceled by request"}, 4, "job-1 canceled"),
        (
            {"state": "needs_attention", "reason": "the node said failed with code 0",
             "error_code": 0},
            5,
            "needs attention: the node said failed with code 0 (node error 0)",
        ),
    ],
)  # fmt: skip
def test_a_job_that_does_not_complete_exits_non_zero_with_its_reason(
    end: dict[str, Any], code: int, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = Scripted({"state": "queued"}, RUNNING, end)
    assert watch.watch_job(client, "job-1", interval=0.01) == code
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert says in line
    assert client.paths[0] == "/api/v1/jobs/job-1"


def test_completed_in_a_pipe_prints_state_lines_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = Scripted({"state": "queued"}, {"state": "admitted"}, RUNNING, DONE)
    assert watch.watch_job(client, "job-1", interval=0.01) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == ["job-1: queued", "job-1: admitted", "job-1: running", "job-1: completed"]
    assert lines[-1] == "job job-1 completed: 3 files, 1.00 MB moved in 2.0 s"


def test_a_job_with_nothing_to_move_says_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    kept = {**DONE, "bytes_transferred": 0, "files_completed": 0, "files_skipped": 6}
    assert watch.watch_job(Scripted(RUNNING, kept), "job-1", interval=0.01) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "job job-1 completed: up to date (6 files already there) in 2.0 s"
    assert "at 8.00 Mbps" in watch._progress_text({**BASE, **RUNNING}), "bits per second"


def test_in_a_terminal_it_draws_a_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(watch, "out", terminal)
    assert watch.watch_job(Scripted(RUNNING, DONE), "job-1", interval=0.01) == 0
    text = screen.getvalue()
    assert "1.0/1.0 MB" in text  # bytes done / expected
    assert "completed" in text
    assert "job job-1 completed" in text


def test_an_id_is_quoted_into_the_path() -> None:
    client = Scripted(DONE)
    watch.watch_job(client, "../nodes", interval=0.01)
    assert client.paths == ["/api/v1/jobs/..%2Fnodes"]
