"""POST /api/v1/jobs/batch through the real app and services: one answer per job, each job's
key, the size limit, and bodies refused whole at the edge."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.jobs import MAX_BATCH
from tests.api.conftest import Api
from tests.support.sim import write_tree
from tests.support.stack import job_states, settle

URL = "/api/v1/jobs/batch"


def body(folder: str, **extra: object) -> dict[str, Any]:
    return {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": "node-b",
        "destination_path": f"in-{folder}",
        **extra,
    }


def test_a_batch_answers_each_job_and_queues_the_good_ones(api: Api) -> None:
    jobs = [
        body("b1", idempotency_key="b-1"),
        body("b2", destination_node="nowhere"),
        body("b3", idempotency_key="run:mine"),
        body("b4", deadline="2000-01-01T00:00:00Z"),
        body("b5"),
    ]
    answer = api.client.post(URL, json={"jobs": jobs}, headers=api.headers("submit"))

    assert answer.status_code == 207, answer.text
    said = answer.json()
    assert (said["queued"], said["known"], said["refused"]) == (2, 0, 3)
    first, unknown, reserved, past, last = said["results"]
    assert first["status"] == 202 and first["state"] == "queued" and first["index"] == 0
    assert unknown["status"] == 422 and unknown["field"] == "destination_node"
    assert unknown["job_id"] is None and "nowhere" in unknown["error"]
    assert reserved["status"] == 422 and reserved["field"] == "idempotency_key"
    assert reserved["error"] == "keys starting with 'schedule:' or 'run:' are reserved"
    assert past["status"] == 422 and past["field"] == "deadline"
    assert last["status"] == 202
    assert set(job_states(api.stack.ctx)) == {first["job_id"], last["job_id"]}

    shown = api.client.get(f"/api/v1/jobs/{first['job_id']}", headers=api.headers("read"))
    assert shown.json()["destination_path"] == "/in-b1"
    write_tree(api.stack.root_a, {"b1/x.txt": b"1", "b5/y.txt": b"5"})
    states = settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])
    assert set(states.values()) == {"completed"}


def test_a_batch_sent_again_answers_200_per_job_and_a_changed_one_409(api: Api) -> None:
    jobs = [body("r1", idempotency_key="r-1"), body("r2", idempotency_key="r-2")]
    first = api.client.post(URL, json={"jobs": jobs}, headers=api.headers("submit")).json()
    again = api.client.post(URL, json={"jobs": jobs}, headers=api.headers("submit"))

    assert again.status_code == 207
    assert [r["status"] for r in again.json()["results"]] == [200, 200]
    assert [r["job_id"] for r in again.json()["results"]] == [r["job_id"] for r in first["results"]]
    changed = [body("r1", idempotency_key="r-1", priority=7), jobs[1]]
    answer = api.client.post(URL, json={"jobs": changed}, headers=api.headers("submit")).json()
    assert [r["status"] for r in answer["results"]] == [409, 200]
    assert answer["results"][0]["field"] == "idempotency_key"
    assert answer["results"][0]["error"] == "this key was already used with different parameters"
    other_token = api.client.post(URL, json={"jobs": jobs[:1]}, headers=api.headers("admin"))
    assert other_token.json()["results"][0]["status"] == 409
    # the single-job route and the batch share the keys
    single = {**api.headers("submit"), "Idempotency-Key": "r-2"}
    replay = api.client.post("/api/v1/jobs", json=body("r2"), headers=single)
    assert replay.status_code == 200 and replay.json()["id"] == first["results"][1]["job_id"]
    assert len(job_states(api.stack.ctx)) == 2


def test_an_invalid_body_or_too_many_jobs_is_refused_whole(api: Api) -> None:
    bad_item = [body("v1"), body("v2", source_paths=["../etc"])]
    answer = api.client.post(URL, json={"jobs": bad_item}, headers=api.headers("submit"))
    assert answer.status_code == 422
    assert answer.json()["field"].startswith("jobs.1.source_paths")

    too_many = [body(f"m{i}") for i in range(MAX_BATCH + 1)]
    answer = api.client.post(URL, json={"jobs": too_many}, headers=api.headers("submit"))
    assert answer.status_code == 422 and answer.json()["field"] == "jobs"
    empty = api.client.post(URL, json={"jobs": []}, headers=api.headers("submit"))
    assert empty.status_code == 422
    long_key = [body("v3", idempotency_key="k" * 256)]
    answer = api.client.post(URL, json={"jobs": long_key}, headers=api.headers("submit"))
    assert answer.status_code == 422 and answer.json()["field"] == "jobs.0.idempotency_key"
    assert (
        api.client.post(URL, json={"jobs": [body("v4")]}, headers=api.headers("read")).status_code
        == 403
    )
    assert job_states(api.stack.ctx) == {}

    full = [body(f"f{i}") for i in range(MAX_BATCH)]
    answer = api.client.post(URL, json={"jobs": full}, headers=api.headers("submit"))
    assert answer.status_code == 207 and answer.json()["queued"] == MAX_BATCH
