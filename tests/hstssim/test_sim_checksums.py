"""File checksums: a transfer whose spec asks for them reports the checksum of the bytes moved."""

from __future__ import annotations

import hashlib
import os

import pytest


@pytest.mark.parametrize(
    ("asked", "hashlib_name"), [("sha-256", "sha256"), ("md5", "md5"), ("sha-512", "sha512")]
)
def test_each_file_reports_the_checksum_of_its_bytes(sim, asked, hashlib_name):
    contents = {"out/one.bin": os.urandom(300_000), "out/sub/two.txt": b"two\n"}
    for rel, data in contents.items():
        sim.write("a", rel, data)

    transfer = sim.upload("a", "b", ["/out"], file_checksum=asked)

    assert transfer["status"] == "completed", transfer
    reported = {f["path"]: (f["checksum_type"], f["checksum"]) for f in transfer["files"]}
    assert reported == {
        f"/Upload/{rel}": (asked, hashlib.new(hashlib_name, data).hexdigest())
        for rel, data in contents.items()
    }


def test_a_resumed_file_reports_the_checksum_of_the_whole_file(sim):
    data = os.urandom(400_000)
    sim.write("a", "r.bin", data)
    sim.write("b", "Upload/r.bin.partial", data[:150_000])
    transfer = sim.upload("a", "b", ["r.bin"], resume_policy="full_csum", file_checksum="sha1")
    (entry,) = transfer["files"]
    assert entry["start_byte"] == 150_000
    assert (entry["checksum_type"], entry["checksum"]) == ("sha1", hashlib.sha1(data).hexdigest())


def test_a_download_reports_the_checksum_of_the_bytes_received(sim):
    data = os.urandom(70_000)
    sim.write("b", "pub/file.bin", data)
    setup = sim.client("b").post(
        "/files/download_setup",
        json={"transfer_requests": [{"transfer_request": {"paths": [{"source": "/pub"}]}}]},
    )
    spec = setup.json()["transfer_specs"][0]["transfer_spec"]
    body = {k: v for k, v in spec.items() if v is not None}
    body |= {"destination_root": "/Downloads", "file_checksum": "sha-384"}
    transfer = sim.wait("a", sim.start("a", body, ["/pub"]))
    (entry,) = transfer["files"]
    assert entry["checksum_type"] == "sha-384"
    assert entry["checksum"] == hashlib.sha384(data).hexdigest()


def test_without_file_checksum_files_report_none(sim):
    sim.write("a", "x.bin", b"x" * 10)
    sim.write("a", "skip.bin", b"same")
    sim.write("b", "Upload/skip.bin", b"same")
    transfer = sim.upload("a", "b", ["x.bin"])
    assert [(f["checksum_type"], f["checksum"]) for f in transfer["files"]] == [("none", None)]
    skipped = sim.upload("a", "b", ["skip.bin"], file_checksum="sha-256")
    # A file the overwrite policy left alone moved no bytes: nothing to report.
    assert [(f["checksum_type"], f["checksum"]) for f in skipped["files"]] == [("none", None)]


def test_an_unknown_algorithm_is_refused(sim):
    sim.write("a", "x.bin", b"x")
    body = {**sim.upload_spec("b"), "paths": [{"source": "x.bin"}], "file_checksum": "crc32"}
    answer = sim.client("a").post("/ops/transfers", json=body)
    assert answer.status_code == 400
    assert "file_checksum" in answer.text
