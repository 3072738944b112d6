"""The console in a real browser (headless Debian chromium, Playwright) against the real API
process, Celery worker and beat, Redis and two hstssim nodes: the job page with its files,
refreshing itself (bar, chart, state) without clobbering a form, the search, every action,
and a form with a wrong CSRF token refused. One rig, one browser,
one signed-in page, to keep it fast; screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from orchestrator.domain.states import JobState
from orchestrator.services.tokens import Scope, create_token
from tests.e2e.conftest import ARTIFACTS, CHROMIUM, NEEDS_CHROMIUM, watched_page
from tests.workers.conftest import Rig

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240), NEEDS_CHROMIUM]


class Console:
    """The signed-in page, with the few moves the test repeats."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url

    def open(self, path: str) -> None:
        self.page.goto(f"{self.url}{path}")

    def job(self, job_id: str) -> None:
        self.open(f"/jobs/{job_id[:8]}")  # a short id, as an operator types it

    def flash(self) -> str:
        return self.page.inner_text("#flash")

    def click(self, selector: str, expect: str) -> None:
        """Click a form's button; the page it redirects to says ``expect``."""
        self.page.click(selector)
        self.page.wait_for_selector("#flash")
        assert expect in self.flash(), self.flash()

    def state(self, state: str) -> None:
        """Wait, without a reload, until the job page shows ``state`` (it refreshes itself)."""
        self.page.wait_for_selector(f'#summary[data-state="{state}"]', timeout=30_000)


def test_the_job_page_search_every_action_and_the_csrf_refusal(rig: Rig, api_url: str) -> None:
    from playwright.sync_api import sync_playwright

    rig.worker()
    with rig.ctx.sessions() as session:
        token = create_token(session, "operator", [Scope.SUBMIT]).secret
        session.commit()
    run = uuid.uuid4().hex[:6]
    slow = f"slow-{run}"
    rig.tree(slow, [1_500_000, 1_500_000])  # 3 MB at 1 Mbit/s: it runs for the whole test
    moving = rig.new_job(slow, options={"target_rate_kbps": 1000}, labels={"team": run})
    broken = [rig.new_job(f"missing-{run}-{i}", labels={"team": run}) for i in range(2)]
    states: Callable[[], dict[str, str]] = rig.states
    rig.wait(
        lambda: (
            states()[moving] == JobState.RUNNING
            and all(states()[j] == JobState.FAILED for j in broken)
        ),
        "one job running and two failed (their source path is missing)",
    )
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = watched_page(browser, problems)
            console = Console(page, api_url)
            console.open("/")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#panels")

            # The overview links each row to its job page; failures count in the verdict.
            assert page.inner_text("#verdict").startswith("2 job(s) failed in the last 24 h")
            page.click(f'#running tr[data-job="{moving}"] a.id')
            page.wait_for_selector(f'#job[data-job="{moving}"]')
            assert page.url.endswith(f"/jobs/{moving}")

            # The job page: route, progress, the attempt's node transfer id, the timeline.
            console.job(moving)
            (remote_id,) = [a.remote_id for a in rig.attempts() if a.job_id == moving]
            assert remote_id and remote_id in page.inner_text("#attempts")
            assert "running" in page.inner_text("#timeline")

            # It refreshes itself: the bar moves and the chart fills without a reload, and the
            # form someone is typing in meanwhile is left alone, even once its buttons are
            # out of date (a stale key would have it swapped otherwise, as pausing shows).
            page.evaluate("window.__not_reloaded = true")
            page.fill("#priority", "7")
            page.eval_on_selector(
                "#actions", "e => { e.dataset.kept = 'yes'; e.dataset.key = 'x' }"
            )
            bar = "#progress progress"
            page.wait_for_selector(bar)
            before = int(page.get_attribute(bar, "value") or 0)
            page.wait_for_function(
                "before => document.querySelector('#progress progress').value > before",
                arg=before,
                timeout=30_000,
            )
            page.wait_for_selector("#progress svg.chart rect.bar", timeout=30_000)
            assert page.input_value("#priority") == "7", "a refresh clobbered the form"
            assert page.query_selector("#actions[data-kept]") is not None
            assert page.evaluate("window.__not_reloaded === true"), "the page reloaded"
            page.click("#list-files")
            page.wait_for_selector("#files tr[data-file-status]")
            listed = page.inner_text("#files")
            # The one under way (f0 or, on slow cores, already sub/f1), with its size.
            assert re.search(rf"{slow}/(f0|sub/f1)\.bin\ttransferring\t1\.50 MB", listed), listed
            page.screenshot(path=str(ARTIFACTS / "console-job.png"), full_page=True)

            # Pause, resume, rate and priority on the running job.
            console.job(moving)
            console.click("#do-pause", "pause requested on the node")
            console.state("paused")  # and its buttons follow: Resume replaces Pause
            console.click("#do-resume", "resume requested on the node")
            console.state("running")
            page.fill("#rate", "800")
            console.click("#do-rate", "target rate set to 800 kbps")
            node_rate = {
                t["id"]: t["start_spec"]["target_rate_kbps"] for t in rig.admin_a.transfers()
            }
            assert node_rate[remote_id] == 800, "the node's transfer has the new rate"
            page.fill("#priority", "9")
            console.click("#do-priority", "priority set to 9")
            assert re.search(r"priority\s+9\b", page.inner_text("#summary dl"), re.I)

            # A form whose CSRF token is not the session's is refused, and nothing happens.
            page.eval_on_selector(
                '#actions form[action$="/cancel"] input[name=csrf]', "e => e.value = 'f00d'"
            )
            page.click("#do-cancel")
            page.wait_for_selector("#notice")
            assert "CSRF token is missing or does not belong to your session" in page.inner_text(
                "#notice"
            )
            assert rig.states()[moving] == JobState.RUNNING

            # Cancel, for real this time.
            console.job(moving)
            console.click("#do-cancel", "cancel requested on the node")
            console.state("canceled")

            # A failure: why and what to do (the source check stopped it before any POST);
            # acknowledged, it leaves the verdict; retried, it fails again (still missing).
            first, second = broken
            console.job(first)
            problem = page.inner_text("#problem")
            assert f"source path missing-{run}-0 does not exist on node-a" in problem, problem
            assert "a source path is not on the source node" in problem
            console.click("#do-acknowledge", "failure acknowledged")
            assert "acknowledged by operator" in page.inner_text("#problem")
            console.open("/")
            assert page.inner_text("#verdict").startswith("1 job(s) failed in the last 24 h")
            console.job(first)
            console.click("#do-retry", "queued again with a fresh attempt budget")
            rig.wait(lambda: states()[first] == JobState.FAILED, "the retried job failed again")

            # The search: by label, path and state, short ids linking to their pages.
            console.open("/jobs")
            page.fill("input[name=label]", f"team={run}")
            page.fill("input[name=path]", f"MISSING-{run}")  # any case
            page.check("input[name=state][value=failed]")
            page.click("#filters button[type=submit]")
            page.wait_for_selector("#results")
            rows = page.query_selector_all("#results tbody tr")
            assert sorted(r.get_attribute("data-job") or "" for r in rows) == sorted(broken)
            assert re.fullmatch(r"[0-9a-f]{8}", page.inner_text(f'tr[data-job="{first}"] a.id'))
            page.screenshot(path=str(ARTIFACTS / "console-search.png"), full_page=True)

            # Retry both failed jobs at once from the search results.
            for job_id in broken:
                page.check(f'tr[data-job="{job_id}"] input[name=job]')
            console.click("#retry-selected", "queued 2 job(s) again")
            assert "state=failed" in page.url, "back on the same search"
            rig.wait(
                lambda: (
                    all(states()[j] == JobState.FAILED for j in broken)
                    and rig.count_in(JobState.QUEUED) == 0
                ),
                "both retried jobs failed again",
            )
            page.reload()  # the search again: both failed anew
            page.click(f'tr[data-job="{second}"] a.id')
            page.wait_for_selector(f'#job[data-job="{second}"]')
            assert "retry requested" in page.inner_text("#timeline")
        finally:
            browser.close()
    refused = "status of 403 (Forbidden)"  # the CSRF refusal's page, and only that
    assert [p for p in problems if refused not in p] == [] and len(problems) == 1, problems
