"""`jobs submit-file`'s reading and batching: lines kept with their numbers, 100 jobs per
request, and a batch refused whole said by the file's line with what went before it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli.batches import BATCH, Line, read_jobs, send_jobs
from orchestrator.cli.console import EXIT_USAGE, CliError
from orchestrator.cli.main import main


class Api:
    """Answers each batch as the API would, refusing whole the one with a job's bad field."""

    def __init__(self, refuse_at: int | None = None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.refuse_at = refuse_at

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert path == "/api/v1/jobs/batch"
        jobs = body["jobs"]
        self.batches.append(jobs)
        for index, job in enumerate(jobs):
            if job.get("n") == self.refuse_at:
                raise CliError(f"jobs.{index}.source_paths: Field required", EXIT_USAGE, 422)
        results = [
            {"index": i, "status": 202, "job_id": f"j{job['n']}"} for i, job in enumerate(jobs)
        ]
        return {"results": results}


def test_lines_keep_their_numbers_past_comments_and_blank_lines() -> None:
    text = "\n".join([json.dumps({"n": 0}), "# note", "", json.dumps({"n": 1})])
    assert read_jobs(text) == [Line(1, {"n": 0}), Line(4, {"n": 1})]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{}\n{", "line 2: not JSON"),
        ("[1]", "line 1: a job is a JSON object"),
        ("\n# x\n", "no job"),
    ],
)
def test_a_file_that_is_not_jobs_is_refused_before_anything_is_sent(text: str, said: str) -> None:
    with pytest.raises(CliError) as refused:
        read_jobs(text)
    assert refused.value.code == EXIT_USAGE
    assert said in refused.value.message


def test_jobs_go_100_per_request_and_each_result_reaches_its_line() -> None:
    jobs = [Line(n + 1, {"n": n}) for n in range(2 * BATCH + 5)]
    api = Api()
    seen: list[tuple[int, str]] = []

    counts = send_jobs(api, jobs, lambda line, r: seen.append((line.number, r["job_id"])))  # type: ignore[arg-type]

    assert [len(b) for b in api.batches] == [BATCH, BATCH, 5]
    assert seen == [(n + 1, f"j{n}") for n in range(2 * BATCH + 5)]
    assert counts == {202: 2 * BATCH + 5}


def test_a_batch_refused_whole_names_the_files_line_and_what_went_before() -> None:
    jobs = [Line(2 * n + 1, {"n": n}) for n in range(BATCH + 10)]  # odd line numbers
    api = Api(refuse_at=BATCH + 3)  # the fourth job of the second batch

    with pytest.raises(CliError) as refused:
        send_jobs(api, jobs, lambda line, r: None)  # type: ignore[arg-type]

    message = refused.value.message
    assert message.startswith(f"line {2 * (BATCH + 3) + 1}: source_paths: Field required")
    assert f"the {BATCH} job(s) before line {2 * BATCH + 1} were sent ({BATCH} queued)" in message
    assert refused.value.code == EXIT_USAGE and refused.value.status == 422


def test_a_file_that_cannot_be_read_is_said_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "jobs.bin"
    binary.write_bytes(b"\xff\xfe{")
    for path, said in ((tmp_path / "missing.jsonl", "No such file"), (binary, "not UTF-8")):
        assert main(["jobs", "submit-file", str(path)]) == EXIT_USAGE
        assert f"cannot read {path}: {said}" in capsys.readouterr().err
