"""The destination checks the token it issued; any mismatch fails the transfer with code 19."""

from __future__ import annotations

import time

import pytest


def _refused(sim, spec, **extra):
    sim.write("a", "out/f.txt", b"payload")
    transfer = sim.wait("a", sim.start("a", spec, ["out"], **extra))
    assert transfer["status"] == "failed", transfer
    assert transfer["error_code"] == 19
    assert transfer["error_desc"] == "authentication failure"
    assert len(transfer["sessions"]) == 1  # 19 is not retryable
    assert sim.files_under("b") == []
    counters = sim.admin("b").get("/admin/counters").json()
    assert counters["bytes_received"] == 0
    assert counters["files_written"] == 0
    return transfer


def test_token_from_another_node_is_refused(sim):
    """The "same node" mistake: upload_setup on the source, pushed to the destination."""
    spec = sim.upload_spec("a")
    b = sim.node("b")
    _refused(sim, {**spec, "remote_host": b.host, "fasp_port": b.fasp_port})


def test_expired_token_is_refused(sim):
    spec = sim.upload_spec("b", token_life_seconds=1)
    time.sleep(1.1)
    _refused(sim, spec)


@pytest.mark.parametrize(
    "token",
    ["garbage", "ATV7_notbase64!!TA", "ATV7_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo_TA", "<tampered>"],
)
def test_garbage_token_is_refused(sim, token):
    spec = sim.upload_spec("b")
    if token == "<tampered>":
        spec["token"] = spec["token"][:-6] + "xxxxTA"  # a real token with altered ciphertext
    else:
        spec["token"] = token
    _refused(sim, spec)


def test_wrong_user_is_refused(sim):
    spec = sim.upload_spec("b")
    _refused(sim, {**spec, "remote_user": "mallory"})


def test_download_token_cannot_authorise_an_upload(sim):
    answer = sim.client("b").post(
        "/files/download_setup",
        json={"transfer_requests": [{"transfer_request": {"paths": [{"source": "/"}]}}]},
    )
    spec = answer.json()["transfer_specs"][0]["transfer_spec"]
    spec = {k: v for k, v in spec.items() if v is not None}
    _refused(sim, {**spec, "direction": "send", "destination_root": "/"})


def test_destination_outside_the_token_is_refused(sim):
    spec = sim.upload_spec("b", "/Upload")
    _refused(sim, {**spec, "destination_root": "/Elsewhere"})


def test_rename_escaping_the_destination_root_is_refused(sim):
    sim.write("a", "f.txt", b"x")
    spec = sim.upload_spec("b", "/Upload")
    transfer_id = sim.start(
        "a", spec, [], paths=[{"source": "f.txt", "destination": "../../outside.txt"}]
    )
    transfer = sim.wait("a", transfer_id)
    assert transfer["status"] == "failed"
    assert transfer["error_code"] in (19, 41)
    assert sim.files_under("b") == []
    assert not (sim.docroot("b").parent / "outside.txt").exists()


def test_changing_remote_host_keeps_the_token_valid(sim):
    """The token binds user, direction, paths and time, not the host name."""
    sim.write("a", "f.txt", b"x")
    spec = sim.upload_spec("b")
    spec["remote_host"] = "localhost"
    transfer = sim.wait("a", sim.start("a", spec, ["f.txt"]))
    assert transfer["status"] == "completed"
