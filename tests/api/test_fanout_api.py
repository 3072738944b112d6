"""Fan-out through /api/v1/jobs: the destinations list, what it shows, and its refusals."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.support.sim import read_tree, write_tree
from tests.support.stack import settle


def fanout_body(folder: str, paths: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "source_node": "node-a",
        "source_paths": [folder],
        "destinations": [{"node": "node-b", "path": path} for path in paths],
        **extra,
    }


def test_a_fanout_job_lists_its_destinations_and_the_list_shows_it_once(api: Api) -> None:
    folder = f"fo-{uuid.uuid4().hex[:8]}"  # the simulated nodes outlive one database's run
    files = {f"{folder}/a.bin": b"a" * 20_000}
    write_tree(api.stack.root_a, files)
    paths = [f"one-{folder}", f"two-{folder}"]
    answer = api.client.post(
        "/api/v1/jobs", json=fanout_body(folder, paths), headers=api.headers("submit")
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["state"] == "running"
    assert [(d["node"], d["path"], d["state"]) for d in job["destinations"]] == [
        ("node-b", f"/{p}", "queued") for p in paths
    ]

    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])

    read = api.headers("read")
    shown = api.client.get(f"/api/v1/jobs/{job['id']}", headers=read).json()
    assert shown["state"] == "completed"
    assert [d["state"] for d in shown["destinations"]] == ["completed", "completed"]
    assert [d["bytes"] for d in shown["destinations"]] == [20_000, 20_000]
    for path in paths:
        assert read_tree(api.stack.root_b / path) == files
    listed = api.client.get("/api/v1/jobs", headers=read).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    part_id = shown["destinations"][0]["job_id"]
    part = api.client.get(f"/api/v1/jobs/{part_id}", headers=read)
    assert part.json()["parent_id"] == job["id"]

    # The job page: a destinations table, each row linking to its part; a part links back.
    sign_in(api, "read")
    page = api.client.get(f"/jobs/{job['id']}").text
    table = re.search(r'<section class="card" id="destinations".*?</section>', page, re.S)
    assert table, page
    rows = re.findall(r'<tr data-destination="([^"]+)" data-state="([^"]+)"', table.group(0))
    assert rows == [(f"node-b:/{p}", "completed") for p in paths]
    assert f'href="/jobs/{part_id}"' in table.group(0)
    assert f'id="parent" href="/jobs/{job["id"]}"' in api.client.get(f"/jobs/{part_id}").text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"destinations": [{"node": "node-b", "path": "x"}]}, "destinations", "at least 2"),
        (
            {"destinations": [{"node": "node-b", "path": "x"}, {"node": "node-b", "path": "/x/"}]},
            "destinations",
            "listed twice",
        ),
        (
            {"destination_node": "node-b", "destination_path": "y"},
            "destinations",
            "not both",
        ),
        (
            {"destinations": [{"node": "node-b", "path": f"p{i}"} for i in range(17)]},
            "destinations",
            "at most 16",
        ),
        (
            {"destinations": [{"node": "node-b", "path": "x"}, {"node": "nowhere", "path": "x"}]},
            "destinations.1.node",
            "nowhere",
        ),
        (
            {"destinations": [{"node": "node-a", "path": "x"}, {"node": "node-b", "path": "x"}]},
            "destinations.0.node",
            "two nodes",
        ),
        (
            {"destinations": [{"node": "node-b", "path": "x"}, {"node": "node-b", "path": "../x"}]},
            "destinations.1.path",
            "",
        ),
    ],
)
def test_bad_destinations_are_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str, words: str
) -> None:
    body = {**fanout_body("v", ["a", "b"]), **change}
    answer = api.client.post("/api/v1/jobs", json=body, headers=api.headers("submit"))
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["field"] == field, error
    assert words in error["error"], error
