"""/api/v1/nodes/{name}/maintenance: add, list and remove windows; bad input is a 422 that
names the field; the node views say when the next window is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.conftest import Api

URL = "/api/v1/nodes/node-b/maintenance"


def test_add_list_show_and_remove_windows(api: Api) -> None:
    soon = datetime.now(UTC) + timedelta(hours=3)
    weekly = {"cron": "0 2 * * SUN", "duration_seconds": 7200, "timezone": "Europe/Paris"}
    created = api.client.post(
        URL, json={**weekly, "reason": "OS patching"}, headers=api.headers("admin")
    )
    assert created.status_code == 201, created.text
    window = created.json()
    assert window["description"] == "every '0 2 * * SUN' (Europe/Paris) for 2h"
    assert datetime.fromisoformat(window["next_start"]).astimezone(UTC).weekday() in (5, 6)
    one_off = {"start": soon.isoformat(), "end": (soon + timedelta(hours=1)).isoformat()}
    second = api.client.post(
        URL, json={**one_off, "reason": "disk swap"}, headers=api.headers("admin")
    )
    assert second.status_code == 201, second.text
    listed = api.client.get(URL, headers=api.headers("read")).json()
    assert [w["reason"] for w in listed] == ["OS patching", "disk swap"]
    node = api.client.get("/api/v1/nodes/node-b", headers=api.headers("read")).json()
    assert node["maintenance"].startswith("maintenance at ")
    assert node["maintenance"].endswith("(disk swap)")  # the sooner of the two
    assert (
        api.client.delete(f"{URL}/{second.json()['id']}", headers=api.headers()).status_code == 204
    )
    gone = api.client.delete(f"{URL}/{second.json()['id']}", headers=api.headers())
    assert gone.status_code == 404
    assert "no maintenance window" in gone.json()["error"]
    refused = api.client.post(URL, json={**weekly, "reason": "x"}, headers=api.headers("read"))
    assert refused.status_code == 403
    unknown = api.client.get("/api/v1/nodes/nowhere/maintenance", headers=api.headers())
    assert unknown.status_code == 404


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"cron": "0 2 * *", "duration_seconds": 3600}, "cron", "five fields"),
    ({"cron": "0 2 * * *"}, "", "needs a duration"),
    ({"cron": "0 2 * * *", "duration_seconds": 10}, "duration_seconds", "greater than"),
    (
        {"cron": "0 2 * * *", "duration_seconds": 3600, "timezone": "Mars/Olympus"},
        "timezone",
        "IANA time zone",
    ),
    ({"start": "2026-12-01T02:00:00Z"}, "", "both start and end"),
    ({"start": "2026-12-01T02:00:00Z", "end": "2026-12-01T01:00:00Z"}, "", "after start"),
    ({"start": "2026-12-01T02:00:00", "end": "2026-12-01T03:00:00Z"}, "start", "timezone"),
    (
        {
            "cron": "0 2 * * *",
            "duration_seconds": 3600,
            "start": "2026-12-01T02:00:00Z",
            "end": "2026-12-01T03:00:00Z",
        },
        "",
        "not both",
    ),
    ({}, "", "give cron"),
]


def test_bad_windows_are_422s_that_say_why(api: Api) -> None:
    for body, field, words in BAD:
        answer = api.client.post(URL, json={**body, "reason": "r"}, headers=api.headers())
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()
        assert error["field"] == field, (body, error)
        assert words in error["error"], (body, error)
    missing = api.client.post(
        URL, json={"cron": "0 2 * * *", "duration_seconds": 60}, headers=api.headers()
    )
    assert missing.status_code == 422
    assert missing.json()["field"] == "reason"
