"""/api/v1/schedules over real services, a real database and two hstssim nodes."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from orchestrator.services.schedules.config_file import apply_file
from tests.api.conftest import Api
from tests.support.sim import write_tree


def body(**fields: Any) -> dict[str, Any]:
    """A valid schedule body with a fresh id."""
    return {
        "id": f"s-{uuid.uuid4().hex[:8]}",
        "cron": "0 * * * *",
        "source_node": "node-a",
        "source_paths": ["outgoing"],
        "destination_node": "node-b",
        "destination_path": "incoming",
        **fields,
    }


def create(api: Api, **fields: Any) -> dict[str, Any]:
    answer = api.client.post("/api/v1/schedules", json=body(**fields), headers=api.headers())
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_create_list_show_change_and_delete(api: Api) -> None:
    made = create(api, timezone="Europe/Paris", description="media to London")
    assert made["health"] == "never run" and made["managed_by"] == "api"
    assert made["options"]["overwrite"] == "diff"  # incremental unless told otherwise
    assert made["next_run_at"] is not None and made["last_run"] is None
    url = f"/api/v1/schedules/{made['id']}"

    listed = api.client.get("/api/v1/schedules", headers=api.headers("read")).json()
    assert made["id"] in [s["id"] for s in listed["items"]]

    changed = api.client.patch(url, json={"interval_seconds": 900}, headers=api.headers())
    assert changed.status_code == 200, changed.text
    assert (changed.json()["cron"], changed.json()["interval_seconds"]) == (None, 900)
    assert changed.json()["timezone"] == "Europe/Paris"

    off = api.client.post(f"{url}/disable", headers=api.headers()).json()
    assert off["enabled"] is False and off["health"] == "disabled" and off["next_run_at"] is None
    on = api.client.post(f"{url}/enable", headers=api.headers()).json()
    assert on["enabled"] is True

    assert api.client.delete(url, headers=api.headers()).status_code == 204
    gone = api.client.get(url, headers=api.headers())
    assert gone.status_code == 404 and made["id"] in gone.json()["error"]


def test_run_now_starts_one_run_and_refuses_a_second_while_it_goes(api: Api) -> None:
    made = create(api)
    url = f"/api/v1/schedules/{made['id']}/run"
    first = api.client.post(url, headers={**api.headers(), "Idempotency-Key": "k1"})
    assert first.status_code == 202, first.text
    job = first.json()
    assert job["schedule_id"] == made["id"] and job["labels"]["trigger"] == "manual"
    again = api.client.post(url, headers={**api.headers(), "Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.json()["id"] == job["id"]
    busy = api.client.post(url, headers=api.headers())
    assert busy.status_code == 409 and "still queued" in busy.json()["error"]
    shown = api.client.get(f"/api/v1/schedules/{made['id']}", headers=api.headers()).json()
    assert shown["active_run_id"] == job["id"]
    assert shown["runs"][0]["job_id"] == job["id"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "not a cron expression"),
        ({"cron": "0 0 31 2 *"}, "cron", "never fires"),
        ({"labels": {f"k{n}": "v" for n in range(19)}}, "labels", "at most 18"),
        ({"cron": None, "interval_seconds": 0}, "interval_seconds", "greater than or equal"),
        ({"destination_node": "nowhere"}, "destination_node", "no node named"),
        ({"source_node": "ghost"}, "source_node", "no node named"),
        ({"source_paths": ["../../etc"]}, "source_paths", "'..' is not allowed"),
        ({"destination_path": "x/../../y"}, "destination_path", "'..' is not allowed"),
        ({"timezone": "Nowhere/City"}, "timezone", "IANA"),
        ({"alerts": {"channels": ["no-such-channel"]}}, "alerts.channels", "no alert channel"),
        ({"destination_node": "node-a"}, "destination_node", "two nodes"),
    ],
)
def test_bad_schedules_get_a_422_naming_the_field(
    api: Api, fields: dict[str, Any], field: str, words: str
) -> None:
    answer = api.client.post("/api/v1/schedules", json=body(**fields), headers=api.headers())
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"].startswith(field), answer.json()
    assert words in answer.json()["error"]


def test_a_bad_change_gets_a_422_and_changes_nothing(api: Api) -> None:
    made = create(api)
    url = f"/api/v1/schedules/{made['id']}"
    answer = api.client.patch(url, json={"cron": "every day"}, headers=api.headers())
    assert answer.status_code == 422 and answer.json()["field"] == "cron"
    assert api.client.get(url, headers=api.headers()).json()["cron"] == "0 * * * *"


def test_schedules_need_a_token_and_the_right_scope(api: Api) -> None:
    assert api.client.get("/api/v1/schedules").status_code == 401
    denied = api.client.post("/api/v1/schedules", json=body(), headers=api.headers("read"))
    assert denied.status_code == 403
    allowed = api.client.post("/api/v1/schedules", json=body(), headers=api.headers("submit"))
    assert allowed.status_code == 201


def test_a_duplicate_id_is_a_conflict(api: Api) -> None:
    made = create(api)
    again = api.client.post("/api/v1/schedules", json=body(id=made["id"]), headers=api.headers())
    assert again.status_code == 409 and "exists" in again.json()["error"]


def test_file_schedules_are_changed_in_the_file_only(api: Api, tmp_path: Path) -> None:
    schedule_id = f"file-{uuid.uuid4().hex[:6]}"
    path = tmp_path / "replications.yaml"
    path.write_text(
        f"schedules:\n  - id: {schedule_id}\n    interval_seconds: 600\n"
        "    source_node: node-a\n    source_paths: [outgoing]\n"
        "    destination_node: node-b\n    destination_path: incoming\n"
    )
    assert apply_file(api.stack.ctx, path).added == [schedule_id]
    url = f"/api/v1/schedules/{schedule_id}"
    shown = api.client.get(url, headers=api.headers()).json()
    assert shown["managed_by"] == "config"
    refused = api.client.patch(url, json={"priority": 5}, headers=api.headers())
    assert refused.status_code == 409 and "replications file" in refused.json()["error"]
    assert api.client.delete(url, headers=api.headers()).status_code == 409


def test_dry_run_lists_both_sides_and_says_what_would_move(api: Api) -> None:
    folder = f"dry-{uuid.uuid4().hex[:8]}"
    source = api.stack.root_a / folder
    mirror = api.stack.root_b / "mirror" / folder
    same = os.urandom(5000)
    write_tree(source, {"same.bin": same, "grown.bin": b"x" * 300, "sub/new.bin": b"n" * 70})
    write_tree(mirror, {"same.bin": same, "grown.bin": b"x" * 200})
    time.sleep(1.1)  # mtimes have a one-second grain
    write_tree(source, {"touched.bin": b"t" * 40})
    write_tree(mirror, {"touched.bin": b"t" * 40})
    time.sleep(1.1)
    write_tree(source, {"touched.bin": b"T" * 40})  # same size, newer at the source
    (source / "link.bin").symlink_to(source / "same.bin")
    made = create(api, source_paths=[folder], destination_path="mirror")
    answer = api.client.post(f"/api/v1/schedules/{made['id']}/dry-run", headers=api.headers("read"))
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["source"] == {"files": 4, "bytes": 5000 + 300 + 70 + 40}
    assert plan["new"] == {"files": 1, "bytes": 70}
    assert plan["changed"] == {"files": 1, "bytes": 300}
    assert plan["maybe_changed"] == {"files": 1, "bytes": 40}
    assert plan["unchanged"] == {"files": 1, "bytes": 5000}
    assert plan["to_move"] == {"files": 3, "bytes": 410}
    assert sorted(f["path"] for f in plan["files"]) == [
        f"{folder}/grown.bin",
        f"{folder}/sub/new.bin",
        f"{folder}/touched.bin",
    ]
    assert plan["missing_sources"] == [] and plan["truncated"] is False
    assert plan["links"] == 1  # link.bin: the symlink policy decides, not compared

    older = create(api, source_paths=[folder], destination_path="mirror",
                   options={"overwrite": "older"})  # fmt: skip
    plan = api.client.post(f"/api/v1/schedules/{older['id']}/dry-run", headers=api.headers()).json()
    assert plan["changed"] == {"files": 1, "bytes": 40}  # touched.bin: newer, so it moves
    assert plan["to_move"] == {"files": 2, "bytes": 110}  # and the new file


def test_dry_run_names_a_missing_source(api: Api) -> None:
    made = create(api, source_paths=["not-there"])
    plan = api.client.post(f"/api/v1/schedules/{made['id']}/dry-run", headers=api.headers()).json()
    assert plan["missing_sources"] == ["not-there"]
    assert plan["to_move"] == {"files": 0, "bytes": 0}


def test_the_slot_key_namespace_is_reserved(api: Api) -> None:
    job = {
        "source_node": "node-a",
        "source_paths": ["outgoing"],
        "destination_node": "node-b",
        "destination_path": "incoming",
    }
    for key in ("schedule:nightly:2026-11-23T00:00:00+00:00", "run:nightly:x"):
        answer = api.client.post(
            "/api/v1/jobs", json=job, headers={**api.headers(), "Idempotency-Key": key}
        )
        assert answer.status_code == 422 and answer.json()["field"] == "Idempotency-Key"


def test_a_value_the_database_cannot_store_is_a_422(api: Api) -> None:
    made = create(api)
    url = f"/api/v1/schedules/{made['id']}"
    answer = api.client.patch(url, json={"description": "a\u0000b"}, headers=api.headers())
    assert answer.status_code in (200, 422), answer.text  # SQLite stores NUL, PostgreSQL cannot
    if api.stack.ctx.settings.effective_database_url().startswith("postgresql"):
        assert answer.status_code == 422 and "cannot be stored" in answer.json()["error"]
    node = {"name": "n-nul", "base_url": "https://x.example", "username": "\u0000", "secret": "s"}
    refused = api.client.post("/api/v1/nodes", json=node, headers=api.headers())
    assert refused.status_code == 422 and refused.json()["field"] == "username"
