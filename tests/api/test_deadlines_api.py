"""A deadline through the API: 202 with a warning, 422 when asked to reject, 422 for a time
without a zone; the job shows its deadline, ETA and risk."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.support.sim import write_tree


def test_an_infeasible_deadline_is_a_warning_or_a_422(api: Api) -> None:
    stack = api.stack
    write_tree(stack.root_a, {"api-big.bin": os.urandom(1_000_000)})
    stack.measured_link(10_000.0, transfers=1)  # 80 kbps: 1 MB takes 100 s
    deadline = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    body = {
        "source_node": "node-a",
        "source_paths": ["api-big.bin"],
        "destination_node": "node-b",
        "destination_path": "in",
        "deadline": deadline,
    }
    submit = api.headers("submit")

    answer = api.client.post("/api/v1/jobs", json=body, headers=submit)

    assert answer.status_code == 202, answer.text
    job = answer.json()
    (warning,) = job["warnings"]
    assert warning.startswith("at the link's measured 80.0 kbps and 1.00 MB ahead, this job ")
    assert (job["at_risk"], job["deadline_missed"]) == (True, False)
    assert datetime.fromisoformat(job["eta"]) > datetime.fromisoformat(job["deadline"])
    assert warning in [e["message"] for e in job["events"]]
    listed = api.client.get("/api/v1/jobs", headers=api.headers("read")).json()["items"]
    assert [j["at_risk"] for j in listed] == [True]
    shown = api.client.get(f"/api/v1/jobs/{job['id']}", headers=api.headers("read")).json()
    assert shown["warnings"] == [], "said once, at submit; the event log keeps it"
    sign_in(api, "read")
    page = api.client.get(f"/jobs/{job['id']}/live").text
    assert '<dd id="deadline">' in page and '<strong class="err">at risk</strong>' in page
    assert '<dd id="eta">' in page

    refused = api.client.post(
        "/api/v1/jobs", json={**body, "deadline_policy": "reject"}, headers=submit
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "deadline"
    assert "after its deadline" in refused.json()["error"]

    naive = api.client.post(
        "/api/v1/jobs", json={**body, "deadline": "2030-01-01T06:00:00"}, headers=submit
    )
    assert (naive.status_code, naive.json()["field"]) == (422, "deadline")
