"""/api/v1/jobs/{id}/files: a job's stored files and checksums, as JSON pages and as CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid

import pytest
from typer.testing import CliRunner

from orchestrator.cli import jobs as jobs_cli
from orchestrator.cli.client import ApiClient
from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.support.sim import write_tree
from tests.support.stack import settle


def cli(api: Api, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """Run ``hsts-orchestrator jobs ARGS`` against the test app; its standard output."""

    class ThroughTheApp(ApiClient):
        def __init__(self, url: str, token: str | None, **_: object) -> None:
            super().__init__(url, token)
            self._http.close()
            self._http = api.client

        def close(self) -> None:
            """The test client outlives the command."""

    monkeypatch.setattr(jobs_cli, "ApiClient", ThroughTheApp)
    api.client.headers.update(api.headers("submit"))
    result = CliRunner().invoke(jobs_cli.app, list(args), env={"ORCH_API_TOKEN": "x"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_checksums_are_listed_paged_and_exported_as_csv(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = f"k-{uuid.uuid4().hex[:8]}"  # the simulated nodes outlive one database's run
    files = {f"{folder}/{n}.bin": os.urandom(2000 + n) for n in range(3)}
    write_tree(api.stack.root_a, files)
    submitted = cli(
        api, monkeypatch, "submit", "--from", f"node-a:{folder}", "--to", "node-b:sums",
        "--checksum", "sha256", "--require-checksums", "--quiet",
    )  # fmt: skip
    job = api.client.get(f"/api/v1/jobs/{submitted.strip()}", headers=api.headers()).json()
    assert job["options"]["file_checksum"] == "sha-256"
    assert job["options"]["require_checksums"] is True
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
    from_cli = csv.DictReader(io.StringIO(cli(api, monkeypatch, "files", job["id"], "-o", "csv")))
    assert {r["path"]: r["checksum"] for r in from_cli} == expected
    as_json = json.loads(cli(api, monkeypatch, "files", job["id"], "-o", "json"))
    assert {f["path"]: f["checksum"] for f in as_json} == expected
    sign_in(api, "read")
    page = api.client.get(f"/jobs/{job['id']}").text
    assert all(checksum in page for checksum in expected.values())
    assert f'href="/jobs/{job["id"]}/files.csv"' in page
    console_csv = api.client.get(f"/jobs/{job['id']}/files.csv")
    assert console_csv.status_code == 200 and console_csv.text == exported.text
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
