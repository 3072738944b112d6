"""The dashboard in a real browser: headless Debian chromium (Playwright) against the real
``hsts-orchestrator api`` process, Celery worker and beat processes, Redis, and two hstssim
nodes. A throttled job is seen running with a moving progress bar, then completed, without a
reload; screenshots are kept in ``artifacts/``.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from orchestrator.services.tokens import Scope, create_token
from tests.e2e.conftest import ARTIFACTS, CHROMIUM, NEEDS_CHROMIUM, watched_page
from tests.workers.conftest import Rig, spec_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), NEEDS_CHROMIUM]


def test_a_job_is_seen_moving_then_completed_without_a_reload(rig: Rig, api_url: str) -> None:
    from playwright.sync_api import sync_playwright

    rig.worker()
    with rig.ctx.sessions() as session:
        token = create_token(session, "operator", [Scope.SUBMIT]).secret
        session.commit()
    folder = f"dash-{uuid.uuid4().hex[:6]}"
    rig.tree(folder, [500_000, 400_000, 300_000])  # 1.2 MB at 2 Mbit/s: about 5 s
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = watched_page(browser, problems)

            # Sign in with the token, as an operator pastes it.
            page.goto(f"{api_url}/")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#panels")
            assert "signed in as operator" in page.inner_text("header")
            assert page.evaluate("document.cookie") == "", "the cookie is HttpOnly"
            assert token not in page.content()
            page.evaluate("window.__not_reloaded = true")

            job = httpx.post(
                f"{api_url}/api/v1/jobs",
                headers={"Authorization": f"Bearer {token}"},
                json=spec_for(folder, options={"target_rate_kbps": 2000}, labels={"team": "media"}),
                timeout=10,
            )
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
            row = f'#running tr[data-job="{job_id}"][data-state="running"]'

            # Running: the bar fills while the page refreshes itself.
            page.wait_for_selector(f"{row} progress[value]", timeout=45_000)
            seen: list[int] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(set(seen)) < 2:
                bar = page.query_selector(f"{row} progress[value]")
                if bar is None:
                    break  # it finished meanwhile
                seen.append(int(bar.get_attribute("value") or 0))
                if len(seen) == 2:
                    page.screenshot(path=str(ARTIFACTS / "dashboard-running.png"), full_page=True)
                time.sleep(0.5)
            assert len(set(seen)) >= 2 and seen == sorted(seen), f"the bar did not move: {seen}"
            assert any(0 < value < 1000 for value in seen), seen  # the first may still be 0

            # Completed: the job leaves the moving panel and shows among the finished ones.
            page.wait_for_selector(
                f'#finished tr[data-job="{job_id}"][data-state="completed"]', timeout=60_000
            )
            assert page.query_selector(f'#running tr[data-job="{job_id}"]') is None
            assert page.evaluate("window.__not_reloaded === true"), "the page reloaded"
            assert "1.20 MB" in page.inner_text(f'#finished tr[data-job="{job_id}"]')
            page.wait_for_selector("#throughput rect.bar")
            assert page.inner_text("#live").startswith("live · updated")
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"\ndashboard screenshots: {shot} and {ARTIFACTS / 'dashboard-running.png'}")

            page.click("text=Sign out")
            page.wait_for_selector("input[name=token]")
        finally:
            browser.close()
    assert problems == [], problems
    rig.assert_converged([job_id])
