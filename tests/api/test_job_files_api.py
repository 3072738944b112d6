"""/api/v1/jobs/{id}/files: a job's stored files and checksums, as JSON pages and as CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import uuid

from tests.api.conftest import Api
from tests.support.sim import write_tree
from tests.support.stack import settle


def test_checksums_are_listed_paged_and_exported_as_csv(api: Api) -> None:
    folder = f"k-{uuid.uuid4().hex[:8]}"  # the simulated nodes outlive one database's run
    files = {f"{folder}/{n}.bin": os.urandom(2000 + n) for n in range(3)}
    write_tree(api.stack.root_a, files)
    job = api.client.post(
        "/api/v1/jobs",
        json={
            "source_node": "node-a",
            "source_paths": [folder],
            "destination_node": "node-b",
            "destination_path": "sums",
            "options": {"file_checksum": "sha256", "require_checksums": True},
        },
        headers=api.headers("submit"),
    ).json()
    assert job["options"]["file_checksum"] == "sha-256"
    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])
    expected = {f"/sums/{rel}": hashlib.sha256(data).hexdigest() for rel, data in files.items()}

    url = f"/api/v1/jobs/{job['id'][:8]}/files"
    first = api.client.get(url, params={"limit": 2}, headers=api.headers("read")).json()
    assert (first["total"], first["next_offset"], len(first["items"])) == (3, 2, 2)
    rest = api.client.get(url, params={"offset": 2}, headers=api.headers("read")).json()
    assert rest["next_offset"] is None
    listed = first["items"] + rest["items"]
    assert {f["path"]: f["checksum"] for f in listed} == expected
    assert {(f["attempt"], f["checksum_type"], f["status"]) for f in listed} == {
        (1, "sha-256", "completed")
    }

    exported = api.client.get(url, params={"format": "csv"}, headers=api.headers("read"))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["path"]: r["checksum"] for r in rows} == expected
    assert {r["size"] for r in rows} == {str(len(d)) for d in files.values()}
    wrong = api.client.get(url, params={"format": "xml"}, headers=api.headers("read"))
    assert wrong.status_code == 422 and wrong.json()["field"] == "query.format"


def test_bad_checksum_options_are_422_naming_the_field(api: Api) -> None:
    body = {
        "source_node": "node-a",
        "source_paths": ["x"],
        "destination_node": "node-b",
        "destination_path": "y",
        "options": {"file_checksum": "crc32"},
    }
    answer = api.client.post("/api/v1/jobs", json=body, headers=api.headers("submit"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "options.file_checksum"
    assert api.client.get("/api/v1/jobs/nope/files", headers=api.headers("read")).status_code == 404
