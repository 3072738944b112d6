"""What the browser tests share: chromium's path, the artifacts folder, a SQLite rig, and the
real ``hsts-orchestrator api`` process in front of it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, wait_for
from tests.workers.conftest import Rig
from tests.workers.conftest import rig as rig  # the fixture, for this folder

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO_ROOT / "artifacts"
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: `make browser` (or apt-get install chromium) installs it",
)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: what the browser sees does not depend on the database."""
    return f"sqlite:///{tmp_path / 'orchestrator.db'}"


@pytest.fixture
def api_url(rig: Rig) -> str:
    """`hsts-orchestrator api` as a process of the rig, on a free loopback port."""
    port = free_port()
    process = ManagedProcess(
        "api",
        [sys.executable, "-m", "orchestrator.cli", "api", "--port", str(port)],
        rig.workdir / "api.log",
        rig.processes.env,
    )
    rig.processes.add(process)
    process.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.alive, process.tail()
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=60, what="the API answers")
    return url  # the rig kills it with its other processes


def watched_page(browser: Browser, problems: list[str]) -> Page:
    """A new page whose script errors and console errors or warnings land in ``problems``."""
    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    return page
