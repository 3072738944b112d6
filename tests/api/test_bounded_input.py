"""Every field a caller fills is bounded and readable: 422 naming the field, never stored.

A submit token once stored a 30 MB job (20 MB of labels) that the dashboard then served every
2 s; a path with a right-to-left override shows another name than the one stored.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

RLO = "\u202e"  # right-to-left override
LINE_SEPARATOR = "\u2028"
NEL = "\x85"  # a C1 control: next line


def job(**fields: Any) -> dict[str, Any]:
    return {
        "source_node": "node-a",
        "source_paths": ["outgoing"],
        "destination_node": "node-b",
        "destination_path": "incoming",
        **fields,
    }


def refused(api: Api, method: str, url: str, body: dict[str, Any], field: str) -> str:
    answer = api.client.request(method, url, json=body, headers=api.headers("admin"))
    assert answer.status_code == 422, (field, answer.text)
    error = answer.json()
    assert error["field"] == field, error
    message: str = error["error"]
    return message


JOB_CASES = [
    pytest.param({"labels": {f"k{i}": "v" for i in range(21)}}, "labels", id="21 labels"),
    pytest.param({"labels": {"k" * 65: "v"}}, "labels", id="long key"),
    pytest.param({"labels": {"k": "v" * 257}}, "labels", id="long value"),
    pytest.param({"labels": {"a=b": "v"}}, "labels", id="= in key"),
    pytest.param({"labels": {"k": f"invoice{RLO}fdp.exe"}}, "labels", id="bidi in value"),
    pytest.param({"labels": {f"k{NEL}": "v"}}, "labels", id="C1 in key"),
    pytest.param({"source_paths": ["a/" + "x" * 1023]}, "source_paths", id="long path"),
    pytest.param({"source_paths": [f"report{RLO}fdp.exe"]}, "source_paths", id="bidi path"),
    pytest.param({"destination_path": f"in{LINE_SEPARATOR}x"}, "destination_path", id="LS"),
    pytest.param({"destination_path": "in\u200bx"}, "destination_path", id="zero width"),
    pytest.param(
        {"options": {"move_after_transfer": f"done{RLO}"}},
        "options.move_after_transfer",
        id="bidi move target",
    ),
]


@pytest.mark.parametrize(("fields", "field"), JOB_CASES)
def test_a_job_with_an_unbounded_or_unreadable_field_is_refused(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    message = refused(api, "POST", "/api/v1/jobs", job(**fields), field)
    assert RLO not in message, "the refused text is not echoed"
    listed = api.client.get("/api/v1/jobs", headers=api.headers("read")).json()
    assert listed["items"] == [], "nothing was stored"


def test_the_largest_labels_allowed_are_accepted(api: Api) -> None:
    labels = {f"{i:02d}" + "k" * 62: "v" * 256 for i in range(20)}
    answer = api.client.post("/api/v1/jobs", json=job(labels=labels), headers=api.headers())
    assert answer.status_code == 202, answer.text
    assert answer.json()["labels"] == labels


def test_schedule_fields_are_bounded_on_create_and_change(api: Api) -> None:
    schedule = {"id": "bounded", "cron": "0 * * * *", **job()}
    refused(api, "POST", "/api/v1/schedules", {**schedule, "cron": "0 " * 2000}, "cron")
    refused(
        api,
        "POST",
        "/api/v1/schedules",
        {**schedule, "labels": {f"k{i}": "v" for i in range(19)}},
        "labels",
    )
    created = api.client.post("/api/v1/schedules", json=schedule, headers=api.headers())
    assert created.status_code == 201, created.text
    url = "/api/v1/schedules/bounded"
    refused(api, "PATCH", url, {"cron": "* " * 2000}, "cron")
    refused(api, "PATCH", url, {"timezone": "Europe/" + "x" * 100}, "timezone")
    refused(api, "PATCH", url, {"source_paths": ["x"] * 101}, "source_paths")
    refused(api, "PATCH", url, {"source_paths": [f"a{RLO}b"]}, "source_paths")
    refused(api, "PATCH", url, {"labels": {"k": "v" * 300}}, "labels")
    refused(api, "PATCH", url, {"priority": 10**9}, "priority")
    refused(api, "PATCH", url, {"alerts": {"channels": ["c" * 65]}}, "alerts.channels.0")


def test_node_fields_are_bounded_and_readable(api: Api) -> None:
    node = {
        "name": "bounded",
        "base_url": "https://bounded.example:9092",
        "username": "u",
        "secret": "s3cret-value",
    }
    refused(api, "POST", "/api/v1/nodes", {**node, "root_path": f"tenant{RLO}a"}, "root_path")
    refused(api, "POST", "/api/v1/nodes", {**node, "root_path": "../up"}, "root_path")
    refused(api, "POST", "/api/v1/nodes", {**node, "ca_bundle": "/" + "c" * 5000}, "ca_bundle")
    refused(api, "POST", "/api/v1/nodes", {**node, "secret": "s" * 5000}, "secret")
    refused(api, "POST", "/api/v1/nodes", {**node, "transfer_host": f"h{NEL}"}, "transfer_host")
    assert api.client.post("/api/v1/nodes", json=node, headers=api.headers()).status_code == 201
    refused(api, "PATCH", "/api/v1/nodes/bounded", {"root_path": "a/../../b"}, "root_path")
    refused(api, "PATCH", "/api/v1/nodes/bounded", {"ca_bundle": "c" * 5000}, "ca_bundle")


def test_query_filters_are_bounded(api: Api) -> None:
    for params in ({"node": "n" * 65}, {"schedule": "s" * 65}, {"label": "k=" + "v" * 400}):
        answer = api.client.get("/api/v1/jobs", params=params, headers=api.headers("read"))
        assert answer.status_code == 422, (params, answer.text)
