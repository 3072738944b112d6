"""Controlling running transfers: rate limits, pause/resume, cancel, concurrency slots."""

from __future__ import annotations

import time

import pytest


def start_slow(sim, size, rate_kbps, name="slow.bin"):
    data = sim.random_file("a", name, size)
    transfer_id = sim.start("a", sim.upload_spec("b"), [name], target_rate_kbps=rate_kbps)
    return transfer_id, data


def running_with_bytes(sim, transfer_id):
    transfer = sim.transfer("a", transfer_id)
    return transfer if transfer["bytes_transferred"] > 0 else None


def test_target_rate_throttles_the_data_plane(sim):
    size = 100_000  # at 800 kbps = 100 kB/s: about 1 s
    started = time.monotonic()
    transfer_id, data = start_slow(sim, size, 800)
    transfer = sim.wait("a", transfer_id)
    took = time.monotonic() - started
    assert transfer["status"] == "completed"
    assert 0.8 <= took <= 1.8, took
    assert 0.8 <= transfer["elapsed_usec"] / 1e6 <= 1.8
    assert 500 <= transfer["avg_rate_kbps"] <= 1000
    assert transfer["start_spec"]["target_rate_kbps"] == 800
    assert (sim.docroot("b") / "Upload/slow.bin").read_bytes() == data


def test_node_default_rate_applies_when_the_spec_has_none(sim):
    sim.set("a", default_target_rate_kbps=800)
    sim.random_file("a", "d.bin", 50_000)
    started = time.monotonic()
    transfer = sim.upload("a", "b", ["d.bin"])
    assert transfer["start_spec"]["target_rate_kbps"] == 800
    assert time.monotonic() - started >= 0.4


def test_rate_change_takes_effect_on_the_running_stream(sim, wait_for):
    transfer_id, data = start_slow(sim, 400_000, 400)  # would take 8 s
    wait_for(lambda: running_with_bytes(sim, transfer_id))
    changed = sim.client("a").put(
        f"/ops/transfers/{transfer_id}",
        json={"target_rate_kbps": 40_000, "min_rate_kbps": 10, "rate_policy": "high"},
    )
    assert changed.status_code == 200
    assert changed.json()["id"] == transfer_id
    started = time.monotonic()
    transfer = sim.wait("a", transfer_id, timeout=5)
    assert time.monotonic() - started < 2
    assert transfer["status"] == "completed"
    assert transfer["start_spec"]["target_rate_kbps"] == 40_000
    assert transfer["start_spec"]["min_rate_kbps"] == 10
    assert transfer["start_spec"]["rate_policy"] == "high"
    assert transfer["sessions"][0]["target_rate_kbps"] == 40_000
    assert (sim.docroot("b") / "Upload/slow.bin").read_bytes() == data


def test_pause_holds_the_bytes_and_resume_finishes(sim, wait_for):
    transfer_id, data = start_slow(sim, 300_000, 2000)
    wait_for(lambda: running_with_bytes(sim, transfer_id))
    paused = sim.client("a").put(f"/ops/transfers/{transfer_id}", json={"status": "paused"})
    assert paused.json()["status"] == "paused"
    before = sim.transfer("a", transfer_id)["bytes_transferred"]
    time.sleep(0.3)
    held = sim.transfer("a", transfer_id)
    assert held["status"] == "paused"
    assert held["bytes_transferred"] - before <= 16_000  # at most the chunk in flight
    resumed = sim.client("a").put(
        f"/ops/transfers/{transfer_id}", json={"status": "resume", "target_rate_kbps": 0}
    )
    assert resumed.json()["status"] == "running"
    assert sim.wait("a", transfer_id)["status"] == "completed"
    assert (sim.docroot("b") / "Upload/slow.bin").read_bytes() == data


@pytest.mark.parametrize("word", ["canceled", "cancelled", "stopped"])
def test_put_cancel_words_end_canceled(sim, wait_for, word):
    transfer_id, _ = start_slow(sim, 300_000, 1000)
    wait_for(lambda: running_with_bytes(sim, transfer_id))
    answer = sim.client("a").put(f"/ops/transfers/{transfer_id}", json={"status": word})
    assert answer.status_code == 200
    assert answer.json()["status"] == "canceled"
    transfer = sim.transfer("a", transfer_id)
    assert transfer["status"] == "canceled"
    assert transfer["error_code"] == 28
    assert not (sim.docroot("b") / "Upload/slow.bin").exists()


def test_cancel_method_answers_204_and_ends_canceled(sim, wait_for):
    transfer_id, _ = start_slow(sim, 300_000, 1000)
    wait_for(lambda: running_with_bytes(sim, transfer_id))
    answer = sim.client("a").request("CANCEL", f"/ops/transfers/{transfer_id}")
    assert answer.status_code == 204
    assert answer.content == b""
    transfer = sim.transfer("a", transfer_id)
    assert transfer["status"] == "canceled"
    assert transfer["sessions"][0]["status"] == "failed"
    assert sim.client("a").request("CANCEL", "/ops/transfers/unknown").status_code == 404


def test_invalid_put_bodies_are_400(sim, wait_for):
    transfer_id, _ = start_slow(sim, 100_000, 8000)
    client = sim.client("a")
    for body in ({"status": "exploded"}, {"target_rate_kbps": "fast"}, {"rate_policy": "max"}):
        answer = client.put(f"/ops/transfers/{transfer_id}", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] == 400
    assert client.put("/ops/transfers/nope", json={"status": "paused"}).status_code == 404
    sim.wait("a", transfer_id)


def test_sessions_beyond_the_limit_wait(sim, wait_for):
    sim.set("a", max_concurrent_sessions=1)
    first, _ = start_slow(sim, 200_000, 2000, "one.bin")
    second, _ = start_slow(sim, 10_000, 0, "two.bin")
    wait_for(lambda: running_with_bytes(sim, first))
    time.sleep(0.1)
    assert sim.transfer("a", second)["status"] == "waiting"
    sim.client("a").put(f"/ops/transfers/{first}", json={"target_rate_kbps": 0})
    assert sim.wait("a", first)["status"] == "completed"
    assert sim.wait("a", second)["status"] == "completed"


def test_statuses_never_spell_cancelled(sim, wait_for):
    transfer_id, _ = start_slow(sim, 100_000, 1000)
    sim.client("a").put(f"/ops/transfers/{transfer_id}", json={"status": "cancelled"})
    listing = sim.client("a").get("/ops/transfers").json()
    statuses = {t["status"] for t in listing} | {
        s["status"] for t in listing for s in t["sessions"]
    }
    assert statuses <= {"waiting", "running", "paused", "partially_completed", "completed"} | {
        "failed",
        "canceled",
    }
    assert "canceled" in statuses


@pytest.mark.parametrize("paused_first", [False, True])
def test_cancel_ends_unfinished_files_failed_with_code_28(sim, wait_for, paused_first):
    sim.write("a", "job/a.txt", b"small")
    sim.random_file("a", "job/slow.bin", 300_000)
    transfer_id = sim.start("a", sim.upload_spec("b"), ["job"], target_rate_kbps=400)

    def slow_file_moving():
        files = {f["path"]: f for f in sim.transfer("a", transfer_id)["files"]}
        slow = files.get("/Upload/job/slow.bin")
        return slow is not None and slow["status"] == "transferring" and slow["bytes_written"] > 0

    wait_for(slow_file_moving)
    if paused_first:
        sim.client("a").put(f"/ops/transfers/{transfer_id}", json={"status": "paused"})
    assert sim.client("a").request("CANCEL", f"/ops/transfers/{transfer_id}").status_code == 204
    transfer = sim.transfer("a", transfer_id)
    assert transfer["status"] == "canceled"
    files = {f["path"]: f for f in transfer["files"]}
    assert files["/Upload/job/a.txt"]["status"] == "completed"
    slow = files["/Upload/job/slow.bin"]
    assert (slow["status"], slow["error_code"]) == ("failed", 28)
    assert slow["error_desc"] == slow["error_description"] == "cancelled by the user"
    assert slow["end_time_usec"] > 0
    assert transfer["sessions"][0]["source_statistics"]["files_xfer_fail"] == 1
