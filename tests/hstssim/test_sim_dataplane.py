"""Real transfers between two simulated nodes: bytes, layout, policies, progress, errors."""

from __future__ import annotations

import hashlib
import os

import pytest


def test_upload_of_a_directory_is_byte_identical(sim):
    contents = {
        "outgoing/big.bin": os.urandom(3 * 1024 * 1024 + 17),
        "outgoing/medium.bin": os.urandom(200_000),
        "outgoing/empty.dat": b"",
        "outgoing/sub/deeper/small.txt": b"hello world\n",
    }
    for rel, data in contents.items():
        sim.write("a", rel, data)

    transfer = sim.upload("a", "b", ["/outgoing"], precalculate_job_size=True)

    assert transfer["status"] == "completed", transfer
    assert transfer["error_code"] == 0
    assert transfer["error_desc"] == ""
    assert transfer["files_completed"] == 4
    assert transfer["directories_completed"] == 3
    total = sum(len(d) for d in contents.values())
    assert transfer["bytes_transferred"] == total
    assert transfer["bytes_written"] == total
    assert transfer["precalc"] == {
        "status": "ready",
        "bytes_expected": total,
        "files_expected": 4,
        "directories_expected": 3,
        "files_special": 0,
        "files_failed": 0,
    }
    for rel, data in contents.items():
        assert (sim.docroot("b") / "Upload" / rel).read_bytes() == data
    assert not [p for p in sim.files_under("b") if p.endswith(".partial")]
    paths = sorted(f["path"] for f in transfer["files"])
    assert paths == sorted(f"/Upload/{rel}" for rel in contents)
    assert all(f["status"] == "completed" for f in transfer["files"])
    assert transfer["sessions"][0]["id"] == transfer["id"]
    assert transfer["sessions"][0]["status"] == "completed"
    assert transfer["sessions"][0]["server_node_id"] == sim.node("b").config.node_id


def test_start_spec_is_normalised_not_the_raw_body(sim):
    sim.write("a", "x.bin", b"x")
    spec = sim.upload_spec("b")
    transfer_id = sim.start("a", spec, ["x.bin"], tags={"myorch": {"job_id": "j1"}})
    start = sim.wait("a", transfer_id)["start_spec"]
    assert start["direction"] == "send"
    assert start["endpoint"] == "client"
    assert start["remote_host"] == sim.node("b").host
    assert start["remote_user"] == "xfer"
    assert start["source_paths"] == ["x.bin"]
    assert start["destination_path"] == "/Upload"
    assert start["fasp_port"] == sim.node("b").fasp_port
    assert start["token_type"] == "auth_token"
    assert start["tags"] == {"myorch": {"job_id": "j1"}}
    assert "token" not in start
    assert "paths" not in start


def test_paths_destination_renames_and_source_root_prefixes(sim):
    sim.write("a", "data/in/one.txt", b"1")
    sim.write("a", "data/in/two.txt", b"22")
    spec = sim.upload_spec("b", "/Drop")
    transfer_id = sim.start(
        "a",
        {**spec, "source_root": "/data/in"},
        [],
        paths=[{"source": "one.txt", "destination": "renamed.txt"}, {"source": "two.txt"}],
    )
    assert sim.wait("a", transfer_id)["status"] == "completed"
    assert (sim.docroot("b") / "Drop/renamed.txt").read_bytes() == b"1"
    assert (sim.docroot("b") / "Drop/two.txt").read_bytes() == b"22"


def test_missing_source_fails_with_code_4(sim):
    transfer = sim.upload("a", "b", ["/does/not/exist"])
    assert transfer["status"] == "failed"
    assert transfer["error_code"] == 4
    assert transfer["error_desc"] == "no such file or directory"


@pytest.mark.parametrize("source", ["../outside.txt", "/../../etc/passwd", "/a/../../x"])
def test_source_escaping_the_docroot_fails_with_code_41(sim, source):
    (sim.docroot("a").parent / "outside.txt").write_bytes(b"secret")
    transfer = sim.upload("a", "b", [source])
    assert transfer["status"] == "failed"
    assert transfer["error_code"] == 41
    assert transfer["error_desc"] == "path outside the docroot"
    assert sim.files_under("b") == []


def test_symlink_out_of_the_docroot_is_refused(sim):
    outside = sim.docroot("a").parent / "secret.txt"
    outside.write_bytes(b"secret")
    (sim.docroot("a") / "link.txt").symlink_to(outside)
    transfer = sim.upload("a", "b", ["link.txt"])
    assert (transfer["status"], transfer["error_code"]) == ("failed", 41)


def test_absolute_source_is_relative_to_the_docroot(sim):
    sim.write("a", "etc/passwd", b"not the host's")
    transfer = sim.upload("a", "b", ["/etc/passwd"])
    assert transfer["status"] == "completed"
    assert (sim.docroot("b") / "Upload/passwd").read_bytes() == b"not the host's"


def test_overwrite_never_skips_an_existing_file(sim):
    sim.write("a", "f.txt", b"new content")
    sim.write("b", "Upload/f.txt", b"old")
    transfer = sim.upload("a", "b", ["f.txt"], overwrite="never")
    assert transfer["status"] == "completed"
    assert transfer["files_skipped"] == 1
    assert transfer["files_completed"] == 0
    assert (sim.docroot("b") / "Upload/f.txt").read_bytes() == b"old"


def test_overwrite_diff_skips_identical_and_sends_different(sim):
    same = os.urandom(10_000)
    sim.write("a", "d/same.bin", same)
    sim.write("a", "d/changed.bin", b"B" * 100)
    sim.write("b", "Upload/d/same.bin", same)
    sim.write("b", "Upload/d/changed.bin", b"A" * 100)  # same size, other content
    transfer = sim.upload("a", "b", ["d"], overwrite="diff", resume_policy="full_csum")
    assert transfer["status"] == "completed"
    assert transfer["files_skipped"] == 1
    assert transfer["files_completed"] == 1
    assert transfer["bytes_transferred"] == 100
    assert (sim.docroot("b") / "Upload/d/changed.bin").read_bytes() == b"B" * 100


def test_overwrite_always_rewrites(sim):
    sim.write("a", "f.txt", b"same")
    sim.write("b", "Upload/f.txt", b"same")
    transfer = sim.upload("a", "b", ["f.txt"], overwrite="always")
    assert (transfer["files_completed"], transfer["files_skipped"]) == (1, 0)


def test_existing_partial_file_is_resumed_when_its_prefix_matches(sim):
    data = os.urandom(500_000)
    sim.write("a", "r.bin", data)
    sim.write("b", "Upload/r.bin.partial", data[:200_000])
    transfer = sim.upload("a", "b", ["r.bin"], resume_policy="full_csum")
    assert transfer["status"] == "completed"
    assert transfer["bytes_transferred"] == 300_000
    assert transfer["files"][0]["start_byte"] == 200_000
    assert (sim.docroot("b") / "Upload/r.bin").read_bytes() == data
    assert not (sim.docroot("b") / "Upload/r.bin.partial").exists()


def test_partial_file_with_a_different_prefix_restarts_from_zero(sim):
    data = os.urandom(100_000)
    sim.write("a", "r.bin", data)
    sim.write("b", "Upload/r.bin.partial", os.urandom(40_000))
    transfer = sim.upload("a", "b", ["r.bin"], resume_policy="full_csum")
    assert transfer["bytes_transferred"] == 100_000
    assert (sim.docroot("b") / "Upload/r.bin").read_bytes() == data


def test_resume_policy_none_restarts_a_partial_file(sim):
    data = os.urandom(50_000)
    sim.write("a", "r.bin", data)
    sim.write("b", "Upload/r.bin.partial", data[:20_000])
    transfer = sim.upload("a", "b", ["r.bin"], resume_policy="none")
    assert transfer["bytes_transferred"] == 50_000
    assert (sim.docroot("b") / "Upload/r.bin").read_bytes() == data


def test_download_direction_pulls_from_the_remote(sim):
    data = os.urandom(123_456)
    sim.write("b", "pub/file.bin", data)
    setup = sim.client("b").post(
        "/files/download_setup",
        json={"transfer_requests": [{"transfer_request": {"paths": [{"source": "/pub"}]}}]},
    )
    spec = setup.json()["transfer_specs"][0]["transfer_spec"]
    assert spec["direction"] == "receive"
    body = {k: v for k, v in spec.items() if v is not None}
    body["destination_root"] = "/Downloads"
    transfer_id = sim.start("a", body, ["/pub"])
    transfer = sim.wait("a", transfer_id)
    assert transfer["status"] == "completed", transfer
    assert (sim.docroot("a") / "Downloads/pub/file.bin").read_bytes() == data
    assert sim.transfer("a", transfer_id)["bytes_transferred"] == len(data)


def test_download_token_refuses_sources_it_does_not_list(sim):
    sim.write("b", "pub/ok.txt", b"ok")
    sim.write("b", "private/no.txt", b"no")
    setup = sim.client("b").post(
        "/files/download_setup",
        json={"transfer_requests": [{"transfer_request": {"paths": [{"source": "/pub"}]}}]},
    )
    spec = setup.json()["transfer_specs"][0]["transfer_spec"]
    body = {k: v for k, v in spec.items() if v is not None}
    transfer = sim.wait("a", sim.start("a", body, ["/private"]))
    assert (transfer["status"], transfer["error_code"]) == ("failed", 19)


def test_unreachable_destination_fails_after_node_retries(sim):
    sim.set("a", max_retries=1)
    sim.write("a", "f.txt", b"x")
    spec = sim.upload_spec("b")
    spec["fasp_port"] = 1  # nothing listens there
    transfer = sim.wait("a", sim.start("a", spec, ["f.txt"]))
    assert transfer["status"] == "failed"
    assert transfer["error_code"] == 14
    assert len(transfer["sessions"]) == 2
    assert [s["retry_count"] for s in transfer["sessions"]] == [0, 1]


def test_progress_counters_move_while_running(sim, wait_for):
    data = os.urandom(400_000)
    sim.write("a", "slow.bin", data)
    spec = sim.upload_spec("b")
    transfer_id = sim.start("a", spec, ["slow.bin"], target_rate_kbps=4000)  # ~0.8 s

    def partway():
        t = sim.transfer("a", transfer_id)
        return t if 0 < t["bytes_transferred"] < len(data) else None

    running = wait_for(partway)
    assert running["status"] == "running"
    assert running["files"][0]["status"] == "transferring"
    assert 0 < running["sessions"][0]["bytes_transferred"] < len(data)
    done = sim.wait("a", transfer_id)
    assert done["files"][0]["bytes_written"] == len(data)
    digest = hashlib.sha256((sim.docroot("b") / "Upload/slow.bin").read_bytes()).digest()
    assert digest == hashlib.sha256(data).digest()
