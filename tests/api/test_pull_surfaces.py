"""Pull mode on every surface: the API, the CLI, the job page, the queue entry and schedules."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from sqlalchemy import select

from orchestrator.cli import main
from orchestrator.db.tables import JobRow
from orchestrator.services.conveyor.intake import submit_message
from orchestrator.services.schedules.runs import run_now
from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.api.test_node_health import serving
from tests.support.sim import write_tree
from tests.support.stack import settle


def test_a_pull_from_the_cli_shows_who_pulls_on_the_api_cli_and_job_page(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = f"pc-{uuid.uuid4().hex[:8]}"  # the simulated nodes outlive one database's run
    data = os.urandom(40_000)
    write_tree(api.stack.root_a, {f"{folder}/f.bin": data})
    token = ["--token", api.tokens["admin"]]
    route = ["--from", f"node-a:{folder}", "--to", f"node-b:in-{folder}"]
    with serving(api) as url:
        code = main(["jobs", "submit", *route, "--pull", "--api", url, *token])
        said = capsys.readouterr().out
        assert code == 0, said
        assert "(pulled by node-b)" in said
        job_id = said.split()[1]

        settle(api.stack.ctx, api.stack.tasks, [api.stack.b_id])

        assert main(["jobs", "show", job_id, "--api", url, *token]) == 0
        shown = capsys.readouterr().out
    assert "pulled by node-b" in shown
    assert (api.stack.root_b / f"in-{folder}/{folder}/f.bin").read_bytes() == data
    job = api.client.get(f"/api/v1/jobs/{job_id}", headers=api.headers("read")).json()
    assert (job["state"], job["mode"], job["runs_on"]) == ("completed", "pull", "node-b")
    sign_in(api)
    page = api.client.get(f"/jobs/{job_id}").text
    assert "pulled by node-b" in page
    assert "each one node transfer on node-b" in page


def test_a_bad_mode_is_refused_with_the_field_on_the_api_and_the_queue(api: Api) -> None:
    body = {
        "source_node": "node-a",
        "source_paths": ["x"],
        "destination_node": "node-b",
        "destination_path": "y",
        "mode": "sideways",
    }
    answer = api.client.post("/api/v1/jobs", json=body, headers=api.headers("submit"))
    assert answer.status_code == 422, answer.text
    assert "mode" in json.dumps(answer.json())
    assert submit_message(api.stack.ctx, body).startswith("rejected: mode: ")
    said = submit_message(api.stack.ctx, {**body, "mode": "pull"})
    assert said.endswith(" queued"), said
    with api.stack.ctx.sessions() as session:
        assert session.scalar(select(JobRow.mode)) == "pull"


def test_a_pull_schedule_makes_pull_runs(api: Api) -> None:
    schedule = {
        "id": f"pull-{uuid.uuid4().hex[:8]}",
        "source_node": "node-a",
        "source_paths": ["outgoing"],
        "destination_node": "node-b",
        "destination_path": "mirror",
        "cron": "0 * * * *",
        "mode": "pull",
    }
    made = api.client.post("/api/v1/schedules", json=schedule, headers=api.headers("admin"))
    assert made.status_code == 201, made.text
    assert made.json()["mode"] == "pull"

    run = run_now(api.stack.ctx, schedule["id"]).job

    assert run.mode == "pull"
    changed = api.client.patch(
        f"/api/v1/schedules/{schedule['id']}", json={"mode": "push"}, headers=api.headers("admin")
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["mode"] == "push"
