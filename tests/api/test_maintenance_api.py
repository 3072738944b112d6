"""/api/v1/nodes/{name}/maintenance: add, list and remove windows; bad input is a 422 that
names the field; the node views say when the next window is."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.cli import main
from tests.api.conftest import Api
from tests.api.test_dashboard import panels, sign_in
from tests.api.test_node_health import node_row, serving
from tests.api.test_node_health import wide_tables as wide_tables  # the fixture

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
    ({"start": "9999-12-31T23:59:59-01:00", "end": "9999-12-31T23:59:59Z"}, "start", "between"),
]


def test_bad_windows_are_422s_that_say_why(api: Api) -> None:
    for body, field, words in BAD:
        answer = api.client.post(URL, json={**body, "reason": "r"}, headers=api.headers())
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()
        assert (error["field"] or "") == field, (body, error)  # a whole-body rule: no field
        assert words in error["error"], (body, error)
    missing = api.client.post(
        URL, json={"cron": "0 2 * * *", "duration_seconds": 60}, headers=api.headers()
    )
    assert missing.status_code == 422
    assert missing.json()["field"] == "reason"


def test_the_cli_adds_lists_and_removes_and_the_dashboard_shows_it(
    api: Api, capsys: pytest.CaptureFixture[str], wide_tables: None
) -> None:
    admin = ["--token", api.tokens["admin"]]
    with serving(api) as url:
        recurring = [
            *("nodes", "maintenance", "add", "node-b", "--cron", "0 2 * * SUN"),
            *("--duration", "2h", "--tz", "Europe/Paris", "--reason", "OS patching"),
        ]
        assert main([*recurring, "--api", url, *admin]) == 0
        added = capsys.readouterr().out
        assert "maintenance window " in added
        assert "every '0 2 * * SUN' (Europe/Paris) for 2h; next start 20" in added
        start = datetime.now(UTC) - timedelta(minutes=1)
        end = start + timedelta(hours=2)
        one_off = [
            *("nodes", "maintenance", "add", "node-b", "--start", start.isoformat()),
            *("--end", end.isoformat(), "--reason", "disk swap"),
        ]
        assert main([*one_off, "--api", url, *admin]) == 0
        assert "in progress until" in capsys.readouterr().out
        both = ["--cron", "0 2 * * *", "--start", start.isoformat(), "--reason", "x"]
        assert main(["nodes", "maintenance", "add", "node-b", *both, "--api", url, *admin]) == 2
        assert "give --cron with --duration, or --start with --end" in capsys.readouterr().err
        listed = ["nodes", "maintenance", "list", "node-b", "--wide", "--api", url, *admin]
        assert main(listed) == 0
        table = capsys.readouterr().out
        assert "every '0 2 * * SUN' (Europe/Paris) for 2h" in table, table
        assert re.search(r"until \d{4}-.*disk swap", table), table
        assert main(["nodes", "show", "node-b", "--api", url, *admin]) == 0
        assert "in maintenance until" in capsys.readouterr().out
        sign_in(api)
        assert "in maintenance until" in node_row(panels(api), "node-b")
        window_id = api.client.get(URL, headers=api.headers()).json()[1]["id"]
        removed = ["nodes", "maintenance", "remove", "node-b", str(window_id)]
        assert main([*removed, "--api", url, *admin]) == 0
        assert f"maintenance window {window_id} of node node-b removed" in capsys.readouterr().out
        assert main([*removed, "--api", url, *admin]) == 1
        assert "no maintenance window" in capsys.readouterr().err
