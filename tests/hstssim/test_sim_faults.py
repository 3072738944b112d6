"""Fault switches: each kind, node-side retries, and resume after a dropped connection."""

from __future__ import annotations

import httpx
import pytest


def admin_transfers(sim, node="a"):
    return sim.admin(node).get("/admin/transfers").json()


def test_fail_transfers_with_a_permanent_code(sim):
    sim.fault("a", kind="fail_transfers", error_code=5)
    sim.write("a", "f.txt", b"x")
    transfer = sim.upload("a", "b", ["f.txt"])
    assert (transfer["status"], transfer["error_code"]) == ("failed", 5)
    assert transfer["error_desc"] == "insufficient permission to read or write"
    assert len(transfer["sessions"]) == 1
    assert sim.upload("a", "b", ["f.txt"], overwrite="always")["status"] == "completed"


def test_fail_transfers_custom_description(sim):
    sim.fault("a", kind="fail_transfers", error_code=36, error_desc="disk on fire", count=0)
    sim.set("a", max_retries=0)
    sim.write("a", "f.txt", b"x")
    transfer = sim.upload("a", "b", ["f.txt"])
    assert (transfer["error_code"], transfer["error_desc"]) == (36, "disk on fire")


def test_retryable_failure_is_retried_by_the_node(sim, wait_for):
    sim.set("a", retry_delay_seconds=0.4)
    sim.fault("a", kind="fail_transfers", error_code=16, count=1)
    data = sim.random_file("a", "f.bin", 50_000)
    transfer_id = sim.start("a", sim.upload_spec("b"), ["f.bin"])
    interim = sim.wait("a", transfer_id, statuses=("partially_completed",))
    assert interim["sessions"][0]["status"] == "failed"
    assert interim["sessions"][0]["error_code"] == 16
    transfer = sim.wait("a", transfer_id)
    assert transfer["status"] == "completed"
    assert transfer["error_code"] == 0
    assert [s["retry_count"] for s in transfer["sessions"]] == [0, 1]
    assert [s["status"] for s in transfer["sessions"]] == ["failed", "completed"]
    assert (sim.docroot("b") / "Upload/f.bin").read_bytes() == data


def test_retries_run_out_then_failed_with_the_table_text(sim):
    sim.set("a", max_retries=2)
    sim.fault("a", kind="fail_transfers", error_code=16, count=3)
    sim.write("a", "f.txt", b"x")
    transfer = sim.upload("a", "b", ["f.txt"])
    assert transfer["status"] == "failed"
    assert (transfer["error_code"], transfer["error_desc"]) == (16, "connection lost")
    assert len(transfer["sessions"]) == 3
    assert sim.admin("a").get("/admin/faults").json() == []


def test_failed_with_code_zero_quirk(sim):
    sim.fault("a", kind="failed_code_zero")
    sim.write("a", "f.txt", b"moved")
    transfer = sim.upload("a", "b", ["f.txt"])
    assert transfer["status"] == "failed"
    assert transfer["error_code"] == 0
    assert transfer["error_desc"] == ""
    assert transfer["files_completed"] == 1
    assert (sim.docroot("b") / "Upload/f.txt").read_bytes() == b"moved"


def test_dropped_connection_is_resumed_by_the_retry_session(sim):
    size, cut = 1_000_000, 300_000
    sim.set("a", retry_delay_seconds=0.2)
    sim.fault("b", kind="drop_connection", after_bytes=cut)  # the destination keeps cut bytes
    data = sim.random_file("a", "big.bin", size)
    transfer_id = sim.start("a", sim.upload_spec("b"), ["big.bin"], resume_policy="sparse_csum")
    interim = sim.wait("a", transfer_id, statuses=("partially_completed",))
    assert interim["sessions"][0]["error_code"] == 16
    assert interim["sessions"][0]["error_desc"] == "connection lost"
    partial = sim.docroot("b") / "Upload/big.bin.partial"
    assert partial.read_bytes() == data[:cut]
    transfer = sim.wait("a", transfer_id)
    assert transfer["status"] == "completed"
    first, retry = transfer["sessions"]
    assert first["status"] == "failed"
    assert retry["bytes_transferred"] == size - cut
    assert transfer["files"][0]["start_byte"] == cut
    assert (sim.docroot("b") / "Upload/big.bin").read_bytes() == data
    assert not partial.exists()


def test_dropped_connection_on_the_source_side(sim):
    sim.fault("a", kind="drop_connection", after_bytes=100_000)
    data = sim.random_file("a", "big.bin", 400_000)
    transfer = sim.upload("a", "b", ["big.bin"])
    assert transfer["status"] == "completed"
    first, retry = transfer["sessions"]
    assert (first["error_code"], first["bytes_transferred"]) == (16, 100_000)
    assert retry["bytes_transferred"] <= 400_000
    assert (sim.docroot("b") / "Upload/big.bin").read_bytes() == data


def test_reject_tokens_on_the_destination(sim):
    sim.fault("b", kind="reject_tokens")
    sim.write("a", "f.txt", b"x")
    transfer = sim.upload("a", "b", ["f.txt"])
    assert (transfer["status"], transfer["error_code"]) == ("failed", 19)
    assert sim.files_under("b") == []
    assert sim.upload("a", "b", ["f.txt"])["status"] == "completed"


def test_http_error_answers_instead_of_doing_the_work(sim):
    sim.fault("a", kind="http_error", endpoint="POST /ops/transfers", status=503, count=2)
    spec = sim.upload_spec("b")
    body = {**spec, "paths": [{"source": "x"}]}
    for _ in range(2):
        answer = sim.client("a").post("/ops/transfers", json=body)
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == 503
        assert answer.json()["error"]["reason"] == "Service Unavailable"
    assert admin_transfers(sim) == []
    assert sim.client("a").post("/ops/transfers", json=body).status_code == 200
    assert len(admin_transfers(sim)) == 1


def test_http_error_after_effect_does_the_work(sim):
    sim.fault("a", kind="http_error", endpoint="POST /ops/transfers", after_effect=True)
    sim.write("a", "f.txt", b"x")
    body = {**sim.upload_spec("b"), "paths": [{"source": "f.txt"}]}
    assert sim.client("a").post("/ops/transfers", json=body).status_code == 503
    (created,) = admin_transfers(sim)
    assert sim.wait("a", created["id"])["status"] == "completed"


def test_hang_delays_the_answer(sim):
    sim.fault("a", kind="hang", endpoint="GET /info", seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        sim.client("a").get("/info", timeout=0.2)
    assert sim.client("a").get("/info").status_code == 200


def test_hang_after_effect_creates_the_transfer_before_hanging(sim):
    sim.fault("a", kind="hang", endpoint="POST /ops/transfers", seconds=0.8, after_effect=True)
    sim.write("a", "f.txt", b"ambiguous")
    body = {**sim.upload_spec("b"), "paths": [{"source": "f.txt"}], "tags": {"o": {"a": "1"}}}
    with pytest.raises(httpx.ReadTimeout):
        sim.client("a").post("/ops/transfers", json=body, timeout=0.3)
    (created,) = admin_transfers(sim)
    assert created["raw_spec"]["tags"] == {"o": {"a": "1"}}
    assert created["raw_spec"]["token"] == "***"
    assert sim.wait("a", created["id"])["status"] == "completed"
    found = sim.client("a").get("/ops/transfers", params={"tag": "o.a=1"}).json()
    assert [t["id"] for t in found] == [created["id"]]


def test_hang_before_the_work_does_nothing_until_it_answers(sim):
    sim.fault("a", kind="hang", endpoint="POST /ops/transfers", seconds=0.5)
    body = {**sim.upload_spec("b"), "paths": [{"source": "f.txt"}]}
    with pytest.raises(httpx.ReadTimeout):
        sim.client("a").post("/ops/transfers", json=body, timeout=0.1)
    assert admin_transfers(sim) == []


def test_empty_200(sim):
    sim.write("a", "f.txt", b"x")
    transfer = sim.upload("a", "b", ["f.txt"])
    sim.fault("a", kind="empty_200", endpoint="GET /ops/transfers/{id}")
    answer = sim.client("a").get(f"/ops/transfers/{transfer['id']}")
    assert (answer.status_code, answer.content) == (200, b"")
    assert sim.transfer("a", transfer["id"])["status"] == "completed"


def test_empty_error(sim):
    sim.fault("a", kind="empty_error", endpoint="GET /ops/transfers", status=500)
    answer = sim.client("a").get("/ops/transfers")
    assert (answer.status_code, answer.json()) == (500, {})


def test_invalid_iteration_token_fault(sim):
    token = sim.client("a").get("/ops/transfers").headers["link"].split("=")[1].split(">")[0]
    sim.fault("a", kind="invalid_iteration_token")
    assert sim.client("a").get("/ops/transfers").status_code == 200  # no token: unaffected
    answer = sim.client("a").get("/ops/transfers", params={"iteration_token": token})
    assert answer.status_code == 400
    assert answer.json()["error"]["user_message"] == "Invalid iteration_token"
    again = sim.client("a").get("/ops/transfers", params={"iteration_token": token})
    assert again.status_code == 200


def test_forever_faults_keep_firing_until_cleared(sim):
    sim.fault("a", kind="http_error", endpoint="GET /info", status=500, count=None)
    for _ in range(3):
        assert sim.client("a").get("/info").status_code == 500
    (armed,) = sim.admin("a").get("/admin/faults").json()
    assert armed["fired"] == 3
    assert armed["remaining"] is None
    assert sim.admin("a").delete("/admin/faults").json() == {"cleared": 1}
    assert sim.client("a").get("/info").status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "no_such_kind"},
        {"kind": "http_error", "endpoint": "GET /nowhere"},
        {"kind": "hang", "endpoint": "GET /info"},
        {"kind": "drop_connection"},
        {"kind": "reject_tokens", "surprise": 1},
    ],
)
def test_bad_faults_are_refused(sim, fault):
    answer = sim.admin("a").post("/admin/faults", json=fault)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 400


def test_one_fault_can_be_removed_by_id(sim):
    fault = sim.fault("a", kind="reject_tokens", count=0)
    assert sim.admin("a").delete(f"/admin/faults/{fault['id']}").status_code == 204
    assert sim.admin("a").get("/admin/faults").json() == []
    assert sim.admin("a").delete(f"/admin/faults/{fault['id']}").status_code == 404
