"""/api/v1/links/{source}/{destination}: link budgets set (admin), read, refused, removed."""

from __future__ import annotations

from tests.api.conftest import Api

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
