"""/api/v1/links/{source}/{destination}: link budgets set (admin), read, refused, removed."""

from __future__ import annotations

import re

import pytest

from orchestrator.cli import main
from orchestrator.db.tables import JobRow
from orchestrator.domain.states import JobState
from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.api.test_node_health import serving
from tests.api.test_node_health import wide_tables as wide_tables  # the fixture

URL = "/api/v1/links/node-a/node-b"


def test_a_budget_is_set_read_and_removed(api: Api) -> None:
    refused = api.client.put(URL, json={"mbps": 100}, headers=api.headers("read"))
    answer = api.client.put(URL, json={"mbps": 100}, headers=api.headers())
    listed = api.client.get("/api/v1/links", headers=api.headers("read"))
    gone = api.client.delete(URL, headers=api.headers())
    again = api.client.delete(URL, headers=api.headers())

    assert refused.status_code == 403
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    assert (shown["source"], shown["destination"], shown["mbps"]) == ("node-a", "node-b", 100)
    assert (shown["allocated_mbps"], shown["transfers"], shown["paused"]) == (0, 0, 0)
    assert [b["mbps"] for b in listed.json()] == [100]
    assert gone.status_code == 204
    assert again.status_code == 404 and "has no budget" in again.json()["error"]


def test_bad_budgets_are_refused_with_the_field_and_the_reason(api: Api) -> None:
    zero = api.client.put(URL, json={"mbps": 0}, headers=api.headers())
    text = api.client.put(URL, json={"mbps": "fast"}, headers=api.headers())
    loop = api.client.put("/api/v1/links/node-a/node-a", json={"mbps": 5}, headers=api.headers())
    unknown = api.client.put(
        "/api/v1/links/node-a/nowhere", json={"mbps": 5}, headers=api.headers()
    )

    assert zero.status_code == 422 and "mbps" in zero.text and "greater than 0" in zero.text
    assert text.status_code == 422 and "mbps" in text.text
    assert loop.status_code == 422 and "two different nodes" in loop.text
    assert unknown.status_code == 404 and "nowhere" in unknown.text


def test_a_paused_jobs_page_and_api_say_why(api: Api) -> None:
    stack = api.stack
    job_id = stack.new_job("why-paused")
    note = "paused: deadlines of higher-priority jobs need the whole link's 100 Mbps"
    with stack.ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        assert job is not None
        job.state, job.allocation_note = JobState.PAUSED, note
        session.commit()

    shown = api.client.get(f"/api/v1/jobs/{job_id}", headers=api.headers("read")).json()
    sign_in(api, "read")
    page = api.client.get(f"/jobs/{job_id}/live").text

    assert shown["allocation_note"] == note
    shown_note = note.replace("'", "&#39;")
    assert f'<dt>why it is paused</dt><dd id="allocation">{shown_note}</dd>' in page


def test_the_cli_sets_lists_and_clears_a_budget(
    api: Api, capsys: pytest.CaptureFixture[str], wide_tables: None
) -> None:
    admin = ["--token", api.tokens["admin"]]
    with serving(api) as url:
        to = ["--api", url, *admin]
        assert main(["nodes", "link-budget", "set", "node-a", "node-b", "100", *to]) == 0
        said = capsys.readouterr().out
        assert main(["nodes", "link-budget", "list", *to]) == 0
        listed = capsys.readouterr().out
        assert main(["nodes", "link-budget", "clear", "node-a", "node-b", *to]) == 0
        cleared = capsys.readouterr().out
        assert main(["nodes", "link-budget", "clear", "node-a", "node-b", *to]) == 1
        refused = capsys.readouterr().err
    assert "link node-a → node-b: budget 100 Mbps" in said
    assert re.search(r"node-a\s+node-b\s+100 Mbps\s+0 Mbps\s+0\s+0\s+test-admin", listed), listed
    assert "no budget" in cleared and "has no budget" in refused
