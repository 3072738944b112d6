"""/api/v1/jobs through the real app and services: submit, list, show, act, and every error."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy.orm import make_transient

from orchestrator.db.tables import JobRow
from orchestrator.domain.states import JobState
from tests.api.conftest import Api
from tests.support.sim import read_tree, write_tree
from tests.support.stack import settle


def body(folder: str, **extra: object) -> dict[str, object]:
    return {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": "node-b",
        "destination_path": f"in-{folder}",
        **extra,
    }


def test_submit_runs_and_show_tells_the_outcome(api: Api) -> None:
    folder = f"j-{uuid.uuid4().hex[:8]}"  # the simulated nodes outlive one database's run
    files = {f"{folder}/a.bin": os.urandom(30_000), f"{folder}/sub/b.txt": b"b"}
    write_tree(api.stack.root_a, files)
    answer = api.client.post("/api/v1/jobs", json=body(folder), headers=api.headers("submit"))
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["state"] == "queued"
    assert job["source_node"] == "node-a"
    assert job["events"][0]["to_state"] == "queued"

    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])

    shown = api.client.get(f"/api/v1/jobs/{job['id']}", headers=api.headers("read")).json()
    assert shown["state"] == "completed"
    assert shown["bytes_transferred"] == sum(len(v) for v in files.values())
    (attempt,) = shown["attempt_list"]
    assert attempt["status"] == "completed"
    assert attempt["remote_id"]
    assert [e["to_state"] for e in shown["events"] if e["to_state"]][-1] == "completed"
    assert read_tree(api.stack.root_b / f"in-{folder}") == files


def test_idempotency_key_returns_the_first_job(api: Api) -> None:
    headers = {**api.headers("submit"), "Idempotency-Key": "order-42"}
    first = api.client.post("/api/v1/jobs", json=body("k"), headers=headers)
    again = api.client.post("/api/v1/jobs", json=body("k"), headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


def test_an_idempotency_key_stands_for_one_request_from_one_token(api: Api) -> None:
    """Reusing a key with another body (or from another token) no longer silently returns the
    first job: 409 says the key was used with different parameters, as payment APIs do."""
    headers = {**api.headers("submit"), "Idempotency-Key": "order-43"}
    first = api.client.post("/api/v1/jobs", json=body("k"), headers=headers)
    assert first.status_code == 202
    # The same request, spelt differently (a leading slash, default options): the same job.
    same = {**body("k"), "source_paths": ["/k/"], "options": {"resume_policy": "sparse_csum"}}
    assert api.client.post("/api/v1/jobs", json=same, headers=headers).status_code == 200

    other_body = api.client.post("/api/v1/jobs", json=body("k", priority=9), headers=headers)
    assert other_body.status_code == 409, other_body.text
    assert other_body.json()["field"] == "Idempotency-Key"
    assert "different parameters" in other_body.json()["error"]
    other_token = {**api.headers("admin"), "Idempotency-Key": "order-43"}
    stolen = api.client.post("/api/v1/jobs", json=body("k"), headers=other_token)
    assert stolen.status_code == 409, stolen.text
    assert "another sender" in stolen.json()["error"]
    assert first.json()["id"] not in stolen.text
    jobs = api.client.get("/api/v1/jobs", headers=api.headers("read")).json()["items"]
    assert [j["id"] for j in jobs] == [first.json()["id"]], "no second job"


def test_a_label_filter_is_an_index_lookup_not_a_scan(api: Api) -> None:
    from sqlalchemy import event

    from orchestrator.db.tables import JobRow
    from orchestrator.domain.jobs import JobSpec
    from orchestrator.services.conveyor.jobs import create_job

    for i in range(60):
        spec = JobSpec.model_validate(body(f"s{i}", labels={"batch": f"b{i % 3}"}))
        create_job(api.stack.ctx, spec)
    loaded: list[str] = []

    def count(target: JobRow, _: object) -> None:
        loaded.append(target.id)

    event.listen(JobRow, "load", count)
    try:
        nothing = api.client.get(
            "/api/v1/jobs", params={"label": "batch=none", "limit": 5}, headers=api.headers()
        )
        assert nothing.json() == {"items": [], "next_cursor": None}
        assert loaded == [], f"{len(loaded)} job rows were read for a label nobody has"
        found: list[str] = []
        cursor = None
        while True:
            params = {"label": "batch=b1", "limit": 7, **({"cursor": cursor} if cursor else {})}
            page = api.client.get("/api/v1/jobs", params=params, headers=api.headers()).json()
            found += [j["id"] for j in page["items"]]
            assert all(j["labels"] == {"batch": "b1"} for j in page["items"])
            if not (cursor := page["next_cursor"]):
                break
        assert len(found) == len(set(found)) == 20
        assert len(loaded) <= 20 + 3, "each page reads its own rows (and one more)"
    finally:
        event.remove(JobRow, "load", count)


def test_list_filters_and_pages(api: Api) -> None:
    ids = []
    for i in range(5):
        labels = {"team": "red" if i % 2 else "blue"}
        answer = api.client.post(
            "/api/v1/jobs", json=body(f"l{i}", labels=labels), headers=api.headers()
        )
        ids.append(answer.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/api/v1/jobs", params=params, headers=api.headers("read")).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids)), "newest first, every job once"
    red = api.client.get("/api/v1/jobs", params={"label": "team=red"}, headers=api.headers())
    assert {j["id"] for j in red.json()["items"]} == {ids[1], ids[3]}
    queued = api.client.get(
        "/api/v1/jobs",
        params={"state": ["queued", "admitted"], "node": "node-b"},
        headers=api.headers(),
    )
    assert len(queued.json()["items"]) == 5
    nobody = api.client.get("/api/v1/jobs", params={"node": "nope"}, headers=api.headers())
    assert nobody.json()["items"] == []


def test_cancel_then_cancel_again_is_a_conflict(api: Api) -> None:
    job = api.client.post("/api/v1/jobs", json=body("c"), headers=api.headers()).json()
    canceled = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.headers())
    assert canceled.status_code == 200
    assert canceled.json()["state"] == "canceled"
    again = api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.headers())
    assert again.status_code == 409
    assert "cannot be canceled" in again.json()["error"]


def test_priority_rate_pause_resume_and_retry_routes(api: Api) -> None:
    job = api.client.post("/api/v1/jobs", json=body("p"), headers=api.headers()).json()
    url = f"/api/v1/jobs/{job['id']}"
    assert (
        api.client.post(f"{url}/priority", json={"priority": 7}, headers=api.headers()).json()[
            "priority"
        ]
        == 7
    )
    rated = api.client.post(f"{url}/rate", json={"target_rate_kbps": 5000}, headers=api.headers())
    assert rated.json()["options"]["target_rate_kbps"] == 5000
    said = [e["message"] for e in rated.json()["events"] if e["kind"] == "operator"]
    assert "rate change: target 5.00 Mbps" in said, "the event log reads in bits per second"
    assert api.client.post(f"{url}/pause", headers=api.headers()).status_code == 409
    assert api.client.post(f"{url}/resume", headers=api.headers()).status_code == 409
    assert api.client.post(f"{url}/retry", headers=api.headers()).status_code == 409


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"source_paths": []}, "source_paths"),
        ({"source_paths": ["../etc"]}, "source_paths"),
        ({"destination_path": "a/../../b"}, "destination_path"),
        ({"options": {"overwrite": "sometimes"}}, "options.overwrite"),
        ({"options": {"target_rate_kbps": 0}}, "options.target_rate_kbps"),
        ({"priority": 1000}, "priority"),
        ({"unknown": 1}, "unknown"),
        ({"source_node": "nope"}, "source_node"),
        ({"destination_node": "node-a"}, "destination_node"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    api: Api, payload: dict[str, object], field: str
) -> None:
    answer = api.client.post("/api/v1/jobs", json={**body("x"), **payload}, headers=api.headers())
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["error"]
    assert api.client.get("/api/v1/jobs", headers=api.headers()).json()["items"] == []


def test_not_json_and_wrong_types_are_422_not_500(api: Api) -> None:
    broken = api.client.post(
        "/api/v1/jobs",
        content=b"{not json",
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    wrong = api.client.post("/api/v1/jobs", json=["a"], headers=api.headers())
    assert wrong.status_code == 422
    bad_cursor = api.client.get("/api/v1/jobs", params={"cursor": "@@"}, headers=api.headers())
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["field"] == "cursor"


def test_unknown_job_is_404(api: Api) -> None:
    answer = api.client.get("/api/v1/jobs/does-not-exist", headers=api.headers())
    assert answer.status_code == 404


def test_scopes(api: Api) -> None:
    assert api.client.get("/api/v1/jobs").status_code == 401
    assert (
        api.client.get("/api/v1/jobs", headers={"Authorization": "Bearer hso_x_y"}).status_code
        == 401
    )
    assert api.client.get("/api/v1/jobs", headers=api.headers("read")).status_code == 200
    denied = api.client.post("/api/v1/jobs", json=body("s"), headers=api.headers("read"))
    assert denied.status_code == 403
    assert "submit" in denied.json()["error"]
    assert (
        api.client.post("/api/v1/jobs", json=body("s"), headers=api.headers("submit")).status_code
        == 202
    )


def test_health_and_readiness_need_no_token(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api.client.get("/readyz")
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.status_code in (200, 503)
    _ = JobState


def test_a_unique_prefix_of_eight_or_more_characters_stands_for_the_job(api: Api) -> None:
    write_tree(api.stack.root_a, {"pre/f.bin": b"x"})
    created = api.client.post(
        "/api/v1/jobs",
        json={
            "source_node": "node-a",
            "source_paths": ["pre"],
            "destination_node": "node-b",
            "destination_path": "in-pre",
        },
        headers=api.headers("submit"),
    ).json()
    job_id = created["id"]

    shown = api.client.get(f"/api/v1/jobs/{job_id[:8]}", headers=api.headers("read"))
    canceled = api.client.post(f"/api/v1/jobs/{job_id[:10]}/cancel", headers=api.headers())
    short = api.client.get(f"/api/v1/jobs/{job_id[:7]}", headers=api.headers("read"))
    anonymous = api.client.get(f"/api/v1/jobs/{job_id[:8]}")

    assert shown.status_code == 200 and shown.json()["id"] == job_id
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
    assert short.status_code == 404 and "at least 8 characters" in short.json()["error"]
    assert anonymous.status_code == 401


def test_a_prefix_two_jobs_share_is_refused_naming_the_field(api: Api) -> None:
    write_tree(api.stack.root_a, {"amb/f.bin": b"x"})
    first = api.stack.new_job("amb")
    with api.stack.ctx.sessions() as session:  # a second job whose id starts the same way
        twin = session.get(JobRow, first)
        assert twin is not None
        session.expunge(twin)
        make_transient(twin)
        twin.id = first[:9] + ("0" if first[9] != "0" else "1") + first[10:]
        twin.idempotency_key = None
        session.add(twin)
        session.commit()

    answer = api.client.get(f"/api/v1/jobs/{first[:9]}", headers=api.headers("read"))

    assert answer.status_code == 422 and answer.json()["field"] == "job_id"
    assert "several jobs" in answer.json()["error"]
