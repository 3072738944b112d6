"""The console's job page and search through the real app, over real nodes: what a read
session sees, the files read from the node on demand, and every filter."""

from __future__ import annotations

import re
import uuid

from orchestrator.domain.states import JobState
from orchestrator.services.views.job_files import FILES_PER_PAGE
from tests.api.conftest import Api
from tests.api.test_dashboard import sign_in
from tests.support.sim import write_tree
from tests.support.stack import settle


def _tree(api: Api, folder: str, count: int, size: int = 10) -> None:
    write_tree(api.stack.root_a, {f"{folder}/f{i:03}.bin": b"x" * size for i in range(count)})


def test_a_failed_job_page_shows_the_node_error_its_class_what_to_do_and_the_timeline(
    api: Api,
) -> None:
    folder = f"p-{uuid.uuid4().hex[:8]}"
    _tree(api, folder, 1)
    api.stack.admin_a.settings(max_retries=0)
    api.stack.admin_a.fault(kind="fail_transfers", error_code=5, error_desc="login refused")
    job_id = api.stack.new_job(folder, labels={"team": "media"})
    assert settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])[job_id] == JobState.FAILED

    assert "Sign in to see this page." in api.client.get(f"/jobs/{job_id}").text
    sign_in(api, "read")
    page = api.client.get(f"/jobs/{job_id[:8]}")  # a short id works
    assert page.status_code == 200, page.text
    html = page.text
    assert f'data-job="{job_id}"' in html and 'id="summary" data-state="failed"' in html
    assert f"node-a:{folder}" in html and f"node-b:/in-{folder}" in html
    assert "team=media" in html
    problem = re.search(r'<section class="card" id="problem".*?</section>', html, re.S)
    assert problem, html
    assert 'data-error-class="configuration"' in problem.group(0)
    assert "[5] NO_PERMS" in problem.group(0)
    assert "login refused" in problem.group(0)
    assert "token_encryption_key" in problem.group(0), "what to do, from the operations guide"
    remote_id = api.stack.admin_a.transfers()[-1]["id"]
    attempts = re.search(r'id="attempts".*?</section>', html, re.S)
    assert attempts and remote_id in attempts.group(0), "the node's transfer id"
    timeline = re.search(r'id="timeline".*?</section>', html, re.S)
    assert (
        timeline and "pill s-queued" in timeline.group(0) and "pill s-failed" in timeline.group(0)
    )
    assert 'action="/dashboard/jobs/' not in html, "a read session sees no buttons"
    assert f'href="/jobs/{job_id}"' in api.client.get("/dashboard/panels").text, "linked rows"


def test_files_come_from_the_node_on_demand_a_page_at_a_time(api: Api) -> None:
    folder = f"f-{uuid.uuid4().hex[:8]}"
    total = FILES_PER_PAGE + 5
    _tree(api, folder, total)
    job_id = api.stack.new_job(folder)
    assert settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])[job_id] == JobState.COMPLETED
    sign_in(api, "read")

    api.stack.admin_a.reset_counters()
    page = api.client.get(f"/jobs/{job_id}").text
    assert f'href="/jobs/{job_id}/files#files"' in page
    assert api.stack.admin_a.counters()["requests"].get("GET /ops/transfers/{id}", 0) == 0, (
        "the page alone never calls the node"
    )

    first = api.client.get(f"/jobs/{job_id}/files").text
    assert f"files 1\N{EN DASH}{FILES_PER_PAGE} of {total}" in first
    assert first.count('data-file-status="completed"') == FILES_PER_PAGE
    assert f"{folder}/f000.bin" in first
    assert f'href="/jobs/{job_id}/files?offset={FILES_PER_PAGE}#files"' in first
    second = api.client.get(f"/jobs/{job_id}/files?offset={FILES_PER_PAGE}").text
    assert second.count('data-file-status="completed"') == 5
    assert f"{folder}/f{total - 1:03}.bin" in second
    assert "next files" not in second

    api.stack.admin_a.fault(kind="close_connection", endpoint="GET /ops/transfers/{id}", count=None)
    down = api.client.get(f"/jobs/{job_id}/files")
    assert down.status_code == 200, "a node that cannot answer is a message, not a 500"
    assert 'id="files-problem"' in down.text
    assert "the node could not list the files: node-a: transfer_files failed" in down.text


def test_unknown_and_ambiguous_ids_get_a_page_that_says_so(api: Api) -> None:
    sign_in(api, "read")
    missing = api.client.get("/jobs/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert "No such job" in missing.text and "no job 00000000-" in missing.text
    short = api.client.get("/jobs/abc")
    assert short.status_code == 404 and "at least 8 characters" in short.text


def test_the_search_filters_by_state_node_label_path_and_time_and_pages(api: Api) -> None:
    run = uuid.uuid4().hex[:6]
    ids = {
        "clip": api.stack.new_job(f"Media/Clips_{run}%", labels={"team": "media"}),
        "doc": api.stack.new_job(f"docs-{run}", labels={"team": "docs"}),
    }
    sign_in(api, "read")

    def found(**query: object) -> list[str]:
        answer = api.client.get("/jobs", params=query)
        assert answer.status_code == 200, answer.text
        return re.findall(r'<tr data-job="([^"]+)"', answer.text)

    assert set(found()) == set(ids.values())
    assert found(path=f"clips_{run}%") == [ids["clip"]], "any case; % and _ are literal"
    assert found(path=f"in-docs-{run}") == [ids["doc"]], "the destination path too"
    assert found(path="clips_x") == []
    assert found(label="team=docs") == [ids["doc"]]
    assert found(state="queued", node="node-a", label="team=media") == [ids["clip"]]
    assert found(state="failed") == []
    assert found(created_after="2000-01-01T00:00", created_before="2999-01-01T00:00")
    assert found(created_after="2999-01-01T00:00") == []

    more = [api.stack.new_job(f"docs-{run}") for _ in range(50)]
    first = api.client.get("/jobs").text
    assert len(re.findall(r'<tr data-job="', first)) == 50
    following = re.search(r'id="next-page" href="/jobs\?([^"]+)"', first)
    assert following, "a next page"
    rest = api.client.get("/jobs?" + following.group(1).replace("&amp;", "&")).text
    assert len(re.findall(r'<tr data-job="', rest)) == 2
    assert 'id="next-page"' not in rest
    shown = set(re.findall(r'<tr data-job="([^"]+)"', first + rest))
    assert shown == set(ids.values()) | set(more)

    bad = api.client.get(
        "/jobs", params={"state": "lost", "label": "nolabel", "created_after": "yesterday"}
    )
    assert bad.status_code == 422
    for reason in (
        "state: lost is not a job state",
        "label: write it as key=value",
        "created_after:",
    ):
        assert reason in bad.text
