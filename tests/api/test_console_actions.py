"""The console's actions through the real app: who may act, the CSRF refusal, the message a
redirect leaves, acknowledging a failure, and a retry of several failed jobs."""

from __future__ import annotations

import re
import uuid

from orchestrator.api.web import COOKIE, FLASH, csrf_token
from orchestrator.db.tables import JobRow
from orchestrator.domain.states import JobState
from tests.api.conftest import Api
from tests.api.test_dashboard import panels, sign_in, verdict
from tests.support.sim import write_tree
from tests.support.stack import job_states, settle


def csrf_of(api: Api, page: str) -> str:
    """The CSRF token the page's forms carry."""
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', api.client.get(page).text)
    assert found, f"no form on {page}"
    return found.group(1)


def act(api: Api, job_id: str, action: str, **fields: str) -> tuple[int, str]:
    """Post one action's form; the status and the page the redirect leads to."""
    answer = api.client.post(
        f"/dashboard/jobs/{job_id}/{action}", data=fields, follow_redirects=False
    )
    return answer.status_code, answer.headers.get("location", "") or answer.text


def message(api: Api, page: str) -> str:
    """The message shown on the page (once)."""
    found = re.search(r'<p class="flash f-(\w+)"[^>]*>(.*?)</p>', api.client.get(page).text)
    return f"{found.group(1)}: {found.group(2)}" if found else ""


def failed_jobs(api: Api, count: int) -> list[str]:
    folder = f"x-{uuid.uuid4().hex[:8]}"
    write_tree(api.stack.root_a, {f"{folder}/f.bin": b"x"})
    api.stack.admin_a.settings(max_retries=0)
    api.stack.admin_a.fault(
        kind="fail_transfers", error_code=4, error_desc="no such file", count=None
    )
    ids = [api.stack.new_job(folder) for _ in range(count)]
    states = settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])
    assert {states[j] for j in ids} == {JobState.FAILED}
    api.stack.admin_a.clear_faults()
    return ids


def test_a_read_session_sees_no_buttons_and_is_refused_when_it_posts(api: Api) -> None:
    job_id = api.stack.new_job("anything")
    sign_in(api, "read")
    page = api.client.get(f"/jobs/{job_id}").text
    assert 'id="actions"' not in page and "/dashboard/jobs/" not in page
    token = csrf_for_session(api)  # what its pages would carry, had they a form
    status, body = act(api, job_id, "cancel", csrf=token, next=f"/jobs/{job_id}")
    assert status == 403
    assert "may read but not act: acting needs the submit scope" in body
    assert job_states(api.stack.ctx)[job_id] == JobState.QUEUED


def csrf_for_session(api: Api) -> str:
    """The CSRF token of the current session, as its pages would carry it."""
    return csrf_token(api.client.cookies[COOKIE])


def test_a_form_without_the_sessions_csrf_token_or_from_elsewhere_is_refused(api: Api) -> None:
    job_id = api.stack.new_job("anything")
    sign_in(api, "read")
    other_session = csrf_for_session(api)
    sign_in(api, "submit")
    good = csrf_of(api, f"/jobs/{job_id}")
    assert good != other_session, "bound to the session"
    for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": other_session}):
        status, body = act(api, job_id, "cancel", **fields)
        assert status == 403, fields
        assert "CSRF token is missing or does not belong to your session" in body
    foreign = api.client.post(
        f"/dashboard/jobs/{job_id}/cancel",
        data={"csrf": good},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert foreign.status_code == 403
    assert job_states(api.stack.ctx)[job_id] == JobState.QUEUED

    status, where = act(api, job_id, "cancel", csrf=good, next="https://evil.example/")
    assert (status, where) == (303, f"/jobs/{job_id}"), "never a redirect off the site"
    assert message(api, where) == f"ok: job {job_id[:8]}: canceled"
    assert message(api, where) == "", "a message is shown once"
    assert FLASH not in api.client.cookies
    assert job_states(api.stack.ctx)[job_id] == JobState.CANCELED


def test_actions_say_what_they_did_or_why_they_could_not(api: Api) -> None:
    job_id = api.stack.new_job("anything")
    sign_in(api, "submit")
    token = csrf_of(api, f"/jobs/{job_id}")
    short = job_id[:8]
    expected = {
        ("pause", ()): f"error: cannot pause job {short}: a queued job cannot be paused",
        ("retry", ()): f"error: cannot retry job {short}: only failed or flagged jobs can be "
        "retried, not queued",
        ("priority", (("priority", "7"),)): f"ok: job {short}: priority set to 7",
        ("priority", (("priority", "700"),)): f"error: cannot change the priority job {short}: "
        "priority: give a whole number from -100 to 100",
        ("rate", (("target_rate_kbps", "5000"),)): f"ok: job {short}: target rate set to 5000 kbps",
        ("rate", (("target_rate_kbps", "fast"),)): f"error: cannot change the rate job {short}: "
        "target_rate_kbps: give a whole number from 1 to 100000000",
    }
    for (action, extra), said in expected.items():
        status, where = act(api, short, action, csrf=token, **dict(extra))
        assert (status, where) == (303, f"/jobs/{short}"), action
        assert message(api, where) == said
    with api.stack.ctx.sessions() as session:
        job = session.get(JobRow, job_id)
        assert job is not None
        assert (job.priority, job.options.get("target_rate_kbps")) == (7, 5000)
    status, where = act(api, "00000000", "cancel", csrf=token)
    assert message(api, where).startswith("error: cannot cancel job 00000000: no job 00000000")
    assert (
        api.client.post(f"/dashboard/jobs/{job_id}/explode", data={"csrf": token}).status_code
        == 404
    )


def test_acknowledged_failures_leave_the_verdict_until_a_retry_fails_again(api: Api) -> None:
    first, second, third = failed_jobs(api, 3)
    sign_in(api, "submit")
    assert verdict(panels(api)) == ("bad", ["3 job(s) failed in the last 24 h"])
    token = csrf_of(api, f"/jobs/{first}")
    assert act(api, first, "acknowledge", csrf=token, next="/")[1] == "/"
    assert message(api, "/").startswith(f"ok: job {first[:8]}: failure acknowledged")
    html = panels(api)
    assert verdict(html) == ("bad", ["2 job(s) failed in the last 24 h"])
    assert f'data-job="{first}" data-state="failed" class="acked" data-acknowledged="true"' in html
    assert "acknowledged by test-submit" in api.client.get(f"/jobs/{first}").text

    acked = api.client.post(f"/api/v1/jobs/{second}/acknowledge", headers=api.headers("submit"))
    assert acked.status_code == 200, acked.text
    assert acked.json()["acknowledged_by"] == "test-submit"
    assert acked.json()["acknowledged_at"]
    read_only = api.client.post(f"/api/v1/jobs/{third}/acknowledge", headers=api.headers("read"))
    assert read_only.status_code == 403
    assert verdict(panels(api)) == ("bad", ["1 job(s) failed in the last 24 h"])
    third_ack = act(api, third, "acknowledge", csrf=token)
    assert third_ack[0] == 303
    assert verdict(panels(api))[0] == "ok"
    queued = api.stack.new_job("anything")
    refused = api.client.post(f"/api/v1/jobs/{queued}/acknowledge", headers=api.headers("submit"))
    assert refused.status_code == 409

    # Bulk retry: the failed ones queue again (their acknowledgement cleared), the others say why.
    api.stack.admin_a.fault(
        kind="fail_transfers", error_code=4, error_desc="no such file", count=None
    )
    answer = api.client.post(
        "/dashboard/jobs/retry",
        data={"csrf": token, "job": [first, second, queued], "next": "/jobs?state=failed"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/jobs?state=failed"
    said = message(api, "/jobs")
    assert said.startswith("error: queued 2 job(s) again; ")
    assert f"cannot retry {queued[:8]}: only failed or flagged jobs can be retried" in said
    api.client.post(f"/api/v1/jobs/{queued}/cancel", headers=api.headers("submit"))
    states = settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])
    assert states[first] == states[second] == JobState.FAILED
    assert verdict(panels(api)) == ("bad", ["2 job(s) failed in the last 24 h"]), "news again"
