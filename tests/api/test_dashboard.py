"""The dashboard at / through the real app: sign-in, the session cookie, every panel, escaping."""

from __future__ import annotations

import os
import re
import uuid

from sqlalchemy import update

from orchestrator.api.routes.dashboard import COOKIE
from orchestrator.db.tables import ApiTokenRow, JobRow, NodeRow
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.polling import poll_node
from tests.api.conftest import Api
from tests.support.sim import write_tree
from tests.support.stack import settle
from tests.workers.conftest import spec_for

HOSTILE = "<script>window.pwned=1</script><img src=x onerror=alert(1)>"


def sign_in(api: Api, scope: str = "read") -> None:
    answer = api.client.post(
        "/dashboard/sign-in", data={"token": api.tokens[scope]}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/"


def panels(api: Api) -> str:
    answer = api.client.get("/dashboard/panels")
    assert answer.status_code == 200, answer.text
    return answer.text


def section(html: str, name: str) -> str:
    """The HTML of one panel."""
    found = re.search(rf'<section class="card" id="{name}">(.*?)</section>', html, re.S)
    assert found, f"no {name} panel"
    return found.group(1)


def test_without_a_token_the_page_is_a_sign_in_form_and_the_panels_refuse(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert '<form class="card" method="post" action="/dashboard/sign-in">' in page.text
    assert 'type="password"' in page.text
    assert 'id="panels"' not in page.text
    assert "Content-Security-Policy" in page.headers
    assert page.headers["cache-control"] == "no-store"

    refused = api.client.get("/dashboard/panels")
    assert refused.status_code == 401
    assert "sign in" in refused.json()["error"]


def test_sign_in_keeps_the_token_in_an_httponly_strict_cookie_and_never_shows_it(
    api: Api,
) -> None:
    token = api.tokens["read"]
    answer = api.client.post("/dashboard/sign-in", data={"token": token}, follow_redirects=False)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "secure" not in cookie.lower(), "plain http on loopback: a Secure cookie would be lost"
    assert token not in answer.text

    page = api.client.get("/")
    assert page.status_code == 200
    assert 'id="panels"' in page.text
    assert "signed in as test-read" in page.text
    assert '<script src="/dashboard/static/dashboard.js" defer></script>' in page.text
    fragment = panels(api)
    for body in (page.text, fragment):
        assert token not in body
        assert token.split("_", 2)[2] not in body  # the secret part (it may hold "_" itself)

    out = api.client.post("/dashboard/sign-out", follow_redirects=False)
    assert out.status_code == 303
    assert f'{COOKIE}=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert 'action="/dashboard/sign-in"' in api.client.get("/").text
    assert api.client.get("/dashboard/panels").status_code == 401


def test_a_bad_token_is_refused_without_being_echoed(api: Api) -> None:
    bad = f"hso_{HOSTILE}"
    answer = api.client.post("/dashboard/sign-in", data={"token": bad}, follow_redirects=False)
    assert answer.status_code == 401
    assert "not a valid API token" in answer.text
    assert "window.pwned" not in answer.text
    assert COOKIE not in api.client.cookies

    empty = api.client.post("/dashboard/sign-in", data={"token": "  "}, follow_redirects=False)
    assert empty.status_code == 422
    assert "token: paste an API token" in empty.text

    huge = api.client.post("/dashboard/sign-in", data={"token": "x" * 10_000})
    assert huge.status_code == 413
    assert "4 KiB" in huge.json()["error"]


def test_a_revoked_token_ends_the_session(api: Api) -> None:
    sign_in(api)
    with api.stack.ctx.sessions() as session:
        session.execute(
            update(ApiTokenRow).where(ApiTokenRow.name == "test-read").values(revoked=True)
        )
        session.commit()
    assert api.client.get("/dashboard/panels").status_code == 401
    page = api.client.get("/")
    assert page.status_code == 401
    assert "not valid any more" in page.text
    assert f'{COOKIE}=""' in page.headers["set-cookie"], "the dead cookie is cleared"


def test_forms_posted_from_another_site_are_refused(api: Api) -> None:
    token = api.tokens["read"]
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = api.client.post(
            "/dashboard/sign-in", data={"token": token}, headers=headers, follow_redirects=False
        )
        assert answer.status_code == 403, headers
        assert "set-cookie" not in answer.headers
    same = api.client.post(
        "/dashboard/sign-in",
        data={"token": token},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert same.status_code == 303


def test_a_bearer_header_works_without_the_cookie(api: Api) -> None:
    page = api.client.get("/", headers=api.headers("read"))
    assert page.status_code == 200
    assert 'id="panels"' in page.text
    assert api.client.get("/dashboard/panels", headers=api.headers("read")).status_code == 200
    wrong = api.client.get("/dashboard/panels", headers={"Authorization": "Bearer hso_nope_x"})
    assert wrong.status_code == 401
    assert api.client.get("/", headers={"Authorization": "Bearer hso_nope_x"}).status_code == 401


def test_empty_states(api: Api) -> None:
    sign_in(api)
    html = panels(api)
    assert verdict(html) == ("ok", ["All quiet: no job is moving or waiting."])
    assert "Nothing is moving right now." in section(html, "running")
    assert "No job is waiting." in section(html, "queued")
    assert "No failed or flagged jobs." in section(html, "problems")
    assert "No job has finished yet." in section(html, "finished")
    assert "No schedule." in section(html, "schedules")
    assert "nothing moved in the last hour" in section(html, "throughput")
    nodes = section(html, "nodes")
    for name in ("node-a", "node-b"):
        assert f'data-node="{name}" data-health="unknown"' in nodes
    assert "reachability unknown" in nodes


def test_static_files_are_served_and_nothing_else(api: Api) -> None:
    css = api.client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    js = api.client.get("/dashboard/static/dashboard.js")
    assert js.status_code == 200
    assert "fetch(root.dataset.src" in js.text
    for name in ("../routes/dashboard.py", "dashboard.html", "%2e%2e%2fapp.py"):
        assert api.client.get(f"/dashboard/static/{name}").status_code == 404


def test_a_hostile_label_and_node_error_text_render_inert(api: Api) -> None:
    folder = f"h-{uuid.uuid4().hex[:8]}"
    write_tree(api.stack.root_a, {f"{folder}/f.bin": b"x"})
    api.stack.admin_a.settings(max_retries=0)
    api.stack.admin_a.fault(kind="fail_transfers", error_code=5, error_desc=HOSTILE)
    labels = {"team": HOSTILE, 'x" onmouseover"alert(2)': "y"}  # keys hold no '='
    answer = api.client.post(
        "/api/v1/jobs", json=spec_for(folder, labels=labels), headers=api.headers("submit")
    )
    assert answer.status_code == 202, answer.text
    states = settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])
    assert set(states.values()) == {JobState.FAILED}

    sign_in(api)
    html = panels(api)
    assert verdict(html) == ("bad", ["1 job(s) failed in the last 24 h"])
    problems = section(html, "problems")
    assert 'data-state="failed"' in problems
    assert "[5]" in problems
    escaped = "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
    assert escaped in problems, "the node's own text, escaped"
    assert f"team={escaped}" in problems, "the label, escaped"
    assert "x&#34; onmouseover&#34;alert(2)=y" in problems
    for raw in ("<script>window", "<img src=x", '" onmouseover"'):
        assert raw not in html
        assert raw not in api.client.get("/").text


def test_a_moving_job_shows_progress_rate_and_eta_then_completes(api: Api) -> None:
    folder = f"m-{uuid.uuid4().hex[:8]}"
    write_tree(api.stack.root_a, {f"{folder}/big.bin": os.urandom(600_000)})
    answer = api.client.post(
        "/api/v1/jobs",
        json=spec_for(folder, options={"target_rate_kbps": 1200}, labels={"team": "blue"}),
        headers=api.headers("submit"),
    )
    job_id = answer.json()["id"]
    sign_in(api)

    def moving(_: dict[str, str]) -> bool:
        with api.stack.ctx.sessions() as session:
            job = session.get(JobRow, job_id)
            return bool(job and job.state == JobState.RUNNING and job.bytes_transferred > 0)

    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id], until=moving)
    running = section(panels(api), "running")
    assert f'data-job="{job_id}" data-state="running"' in running
    value = re.search(r'<progress max="1000" value="(\d+)"', running)
    assert value and 0 < int(value.group(1)) < 1000, running
    assert re.search(r"\d+(\.\d+)? KB of 600 KB", running), running
    assert re.search(r"\d+(\.\d+)? [kM]bps", running), "the rate, in bits per second"
    assert re.search(r'<td class="num eta">\d+:\d\d</td>', running), "an ETA as m:ss"
    assert "team=blue" in running
    nodes = section(panels(api), "nodes")
    assert 'data-node="node-a" data-health="polling"' in nodes

    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])
    html = panels(api)
    assert "Nothing is moving right now." in section(html, "running")
    finished = section(html, "finished")
    assert f'data-job="{job_id}" data-state="completed"' in finished
    assert "600 KB" in finished
    chart = section(html, "throughput")
    assert chart.count('<rect class="bar"') >= 1
    assert "peak" in chart
    node_a = re.search(r'data-node="node-a".*?</tr>', section(html, "nodes"), re.S)
    assert node_a and "600 KB · 0 B" in node_a.group(0), "moved in the last hour: out · in"


def test_a_waiting_job_says_why(api: Api) -> None:
    with api.stack.ctx.sessions() as session:
        session.execute(update(NodeRow).where(NodeRow.name == "node-a").values(max_outbound=1))
        session.commit()
    folders = [f"w-{uuid.uuid4().hex[:8]}" for _ in range(2)]  # apart: no destination lease
    for folder in folders:
        write_tree(api.stack.root_a, {f"{folder}/f.bin": os.urandom(200_000)})
    ids = [
        api.client.post(
            "/api/v1/jobs",
            json=spec_for(folder, options={"target_rate_kbps": 400}, priority=p),
            headers=api.headers("submit"),
        ).json()["id"]
        for folder, p in zip(folders, (5, 1), strict=True)
    ]
    settle(
        api.stack.ctx,
        api.stack.tasks,
        [api.stack.a_id],
        until=lambda s: s[ids[0]] == JobState.RUNNING,
    )
    sign_in(api)
    html = panels(api)
    queued = section(html, "queued")
    assert f'data-job="{ids[1]}" data-state="queued"' in queued
    assert "source node node-a is at its limit (1 active)" in queued
    assert f'data-job="{ids[0]}"' in section(html, "running")
    assert verdict(html) == ("ok", ["Everything is moving: 1 job(s) active, 1 waiting."])
    tiles = section_tiles(html)
    assert tiles["queued"] == "1" and tiles["running"] == "1"


def section_tiles(html: str) -> dict[str, str]:
    """The summary tiles: label -> number."""
    return {
        k: n
        for n, k in re.findall(
            r'<span class="n">([^<]*)</span><span class="k">([^<]*)</span>', html
        )
    }


def verdict(html: str) -> tuple[str, list[str]]:
    """The banner's level and reasons."""
    found = re.search(r'data-level="(\w+)" role="status">(.*?)</section>', html, re.S)
    assert found, "no verdict"
    return found.group(1), re.findall(r"<span>([^<]*)</span>", found.group(2))


def test_the_nodes_panel_shows_a_failing_poll_as_unreachable_with_its_error(api: Api) -> None:
    folder = f"n-{uuid.uuid4().hex[:8]}"
    write_tree(api.stack.root_a, {f"{folder}/f.bin": os.urandom(400_000)})
    job_id = api.client.post(
        "/api/v1/jobs",
        json=spec_for(folder, options={"target_rate_kbps": 400}),
        headers=api.headers("submit"),
    ).json()["id"]
    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id], until=lambda s: s[job_id] != "queued")
    api.stack.admin_a.fault(
        kind="http_error", endpoint="GET /ops/transfers", status=503, count=None
    )
    summary = poll_node(api.stack.ctx, api.stack.a_id, owner="test-poller")
    assert summary.error

    sign_in(api)
    html = panels(api)
    node_a = re.search(r'<tr data-node="node-a".*?</tr>', section(html, "nodes"), re.S)
    assert node_a, html
    row = node_a.group(0)
    assert 'data-health="error"' in row
    assert "unreachable" in row
    assert "503" in row, "the poll's error text"
    level, reasons = verdict(html)
    assert level == "bad" and "node-a: last poll failed" in reasons


def test_the_schedules_panel_shows_health_last_and_next_run(api: Api) -> None:
    folder = f"s-{uuid.uuid4().hex[:8]}"
    write_tree(api.stack.root_a, {f"{folder}/f.bin": b"scheduled"})
    made = []
    for enabled in (True, False):
        answer = api.client.post(
            "/api/v1/schedules",
            json={
                "id": f"sched-{uuid.uuid4().hex[:6]}",
                "description": HOSTILE,
                "cron": "0 * * * *",
                "source_node": "node-a",
                "source_paths": [folder],
                "destination_node": "node-b",
                "destination_path": f"in-{folder}",
                "enabled": enabled,
            },
            headers=api.headers("submit"),
        )
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["id"])
    run = api.client.post(f"/api/v1/schedules/{made[0]}/run", headers=api.headers("submit"))
    assert run.status_code == 202, run.text
    settle(api.stack.ctx, api.stack.tasks, [api.stack.a_id])

    sign_in(api)
    schedules = section(panels(api), "schedules")
    ran = re.search(rf'<tr data-schedule="{made[0]}".*?</tr>', schedules, re.S)
    off = re.search(rf'<tr data-schedule="{made[1]}".*?</tr>', schedules, re.S)
    assert ran and off, schedules
    assert 'data-health="ok"' in ran.group(0)
    assert 'class="pill s-completed"' in ran.group(0)
    assert re.search(r"in \d+ (s|min)", ran.group(0)), "the next run, from now"
    assert '<td class="num">1</td>' in ran.group(0), "one success in a row"
    assert 'data-health="disabled"' in off.group(0)
    assert "never" in off.group(0)
    assert "&lt;script&gt;window.pwned=1" in schedules
    assert "<script>" not in schedules
