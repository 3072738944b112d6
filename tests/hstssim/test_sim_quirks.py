"""Switches for what real nodes may do besides the happy path: odd answers, lost answers, bursts."""

from __future__ import annotations

import json
import time

import httpx
import pytest

LEGACY_TYPE = "application/x-javascript"


def admin_transfers(sim, node="a"):
    return sim.admin(node).get("/admin/transfers").json()


def post_body(sim, sources, **extra):
    """Return a POST /ops/transfers body to node-b's /Upload (nulls stripped by upload_spec)."""
    return {**sim.upload_spec("b"), "paths": [{"source": s} for s in sources], **extra}


@pytest.mark.parametrize("kind", ["upload", "download"])
def test_setup_answered_as_x_javascript_with_null_tags_and_sshfp(sim, kind):
    key = "destination" if kind == "upload" else "source"
    sim.write("b", "out/f.txt", b"x")
    request = {"transfer_requests": [{"transfer_request": {"paths": [{key: "/out"}]}}]}
    path = f"/files/{kind}_setup"
    plain = sim.client("b").post(path, json=request)
    assert plain.headers["content-type"] == "application/json; charset=utf-8"
    sim.fault("b", kind="content_type", endpoint=f"POST {path}")
    legacy = sim.client("b").post(path, json=request)
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == LEGACY_TYPE
    spec = json.loads(legacy.content)["transfer_specs"][0]["transfer_spec"]
    assert "tags" in spec and spec["tags"] is None
    assert "sshfp" in spec and spec["sshfp"] is None
    assert spec["token"].startswith("AT") and spec["token"].endswith("TA")
    again = sim.client("b").post(path, json=request)  # count 1: the next answer is JSON again
    assert again.headers["content-type"] == "application/json; charset=utf-8"


def test_content_type_on_every_endpoint(sim):
    sim.fault("a", kind="content_type", endpoint="*", content_type="text/plain", count=2)
    info = sim.client("a").get("/info")
    listing = sim.client("a").get("/ops/transfers")
    assert [info.headers["content-type"], listing.headers["content-type"]] == ["text/plain"] * 2
    assert info.json()["node_id"] and listing.json() == []


def test_post_answers_a_spec_echo_with_id_and_no_status(sim):
    sim.fault("a", kind="spec_echo")
    sim.write("a", "f.txt", b"echo")
    body = post_body(
        sim, ["f.txt"], tags={"o": {"job": "1"}}, target_rate_kbps=0, symlink_policy="follow"
    )
    answer = sim.client("a").post("/ops/transfers", json=body)
    assert answer.status_code == 200
    echo = answer.json()
    assert "status" not in echo
    assert "sessions" not in echo and "paths" not in echo
    assert echo["id"]
    assert echo["direction"] == "send"
    assert echo["remote_host"] == body["remote_host"]
    assert echo["destination_root"] == body["destination_root"]
    assert echo["token"] == body["token"]
    assert echo["tags"] == {"o": {"job": "1"}}
    assert echo["target_rate_kbps"] == "0"  # transferResponseSpec types it string
    assert echo["symlink_policy"] == "follow"
    assert sim.wait("a", echo["id"])["status"] == "completed"
    assert (sim.docroot("b") / "Upload/f.txt").read_bytes() == b"echo"
    assert sim.client("a").post("/ops/transfers", json=body).json()["status"] == "waiting"


def test_error_code_as_a_string_for_failed_transfers(sim):
    sim.fault("a", kind="error_code_string", count=0)
    sim.set("a", max_retries=0)
    sim.write("a", "f.txt", b"x")
    completed = sim.upload("a", "b", ["f.txt"])
    assert completed["error_code"] == 0
    failed = sim.upload("a", "b", ["missing.txt"])
    assert (failed["status"], failed["error_code"]) == ("failed", "4")
    assert failed["sessions"][0]["error_code"] == 4
    listed = {t["id"]: t for t in sim.client("a").get("/ops/transfers").json()}
    assert listed[failed["id"]]["error_code"] == "4"
    assert listed[completed["id"]]["error_code"] == 0
    summary = sim.client("a").get("/ops/transfers", params={"view": "summary"}).json()
    assert {t["id"]: t["error_code"] for t in summary}[failed["id"]] == "4"


def test_close_connection_after_the_node_acted(sim):
    sim.fault("a", kind="close_connection", endpoint="POST /ops/transfers", after_effect=True)
    sim.write("a", "f.txt", b"lost answer")
    body = post_body(sim, ["f.txt"], tags={"o": {"a": "1"}})
    with pytest.raises(httpx.RemoteProtocolError):
        sim.client("a").post("/ops/transfers", json=body)
    (created,) = admin_transfers(sim)
    assert created["raw_spec"]["tags"] == {"o": {"a": "1"}}
    assert sim.wait("a", created["id"])["status"] == "completed"
    assert (sim.docroot("b") / "Upload/f.txt").read_bytes() == b"lost answer"
    counted = sim.admin("a").get("/admin/counters").json()
    assert counted["requests"]["POST /ops/transfers"] == 1
    assert counted["transfers_created"] == 1


def test_close_connection_before_the_node_acted(sim):
    sim.fault("a", kind="close_connection", endpoint="POST /ops/transfers")
    body = post_body(sim, ["f.txt"])
    with pytest.raises(httpx.RemoteProtocolError):
        sim.client("a").post("/ops/transfers", json=body)
    assert admin_transfers(sim) == []
    assert sim.client("a").get("/info").status_code == 200  # the next request is answered


def test_5xx_burst_on_every_endpoint(sim):
    sim.fault("a", kind="http_error", endpoint="*", status=502, count=3)
    client = sim.client("a")
    burst = [client.get("/info"), client.get("/ops/transfers"), client.get("/ping")]
    assert [r.status_code for r in burst] == [502] * 3
    assert {r.json()["error"]["reason"] for r in burst} == {"Bad Gateway"}
    assert client.get("/info").status_code == 200
    assert client.get("/ops/transfers").status_code == 200
    requests = sim.admin("a").get("/admin/counters").json()["requests"]
    assert requests["GET /info"] == 2
    assert requests["GET /ops/transfers"] == 2
    assert requests["GET /ping"] == 1


def test_5xx_burst_on_one_endpoint_leaves_the_others_alone(sim):
    sim.fault("a", kind="http_error", endpoint="GET /ops/transfers", status=500, count=3)
    client = sim.client("a")
    statuses = []
    for _ in range(3):
        statuses.append(client.get("/ops/transfers").status_code)
        assert client.get("/info").status_code == 200
    assert statuses == [500] * 3
    assert client.get("/ops/transfers").status_code == 200


def test_slow_answer_still_answers_in_full(sim):
    sim.fault("a", kind="hang", endpoint="*", seconds=0.4, count=2)
    client = sim.client("a")
    for path in ("/info", "/ops/transfers"):
        started = time.monotonic()
        answer = client.get(path)
        assert time.monotonic() - started >= 0.4, path
        assert answer.status_code == 200
    assert client.get("/info").json()["node_id"] == sim.node("a").config.node_id
