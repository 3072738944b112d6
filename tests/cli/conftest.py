"""The CLI as a user runs it: ``python -m orchestrator.cli`` subprocesses, and one real
``hsts-orchestrator up --demo`` stack shared by the tests of a module (embedded redis-server,
SQLite, API, worker, beat, Flower and two hstssim nodes, all child processes of ``up``)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0  # start-up on a loaded 2-core machine; usually 5-10 s
STOP_TIMEOUT = 60.0
# Fast enough that a demo job ends in a few seconds.
FAST = {"ORCH_POLL_INTERVAL": "0.5", "ORCH_SWEEP_INTERVAL": "1.0", "ORCH_LOG_LEVEL": "INFO"}


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any ORCH_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


@dataclass
class Result:
    """A finished CLI run."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 120) -> Result:
    """Run ``hsts-orchestrator args`` (as ``python -m orchestrator.cli``) to the end."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def marked_processes(marker: str) -> dict[int, str]:
    """Live (non-zombie) processes whose environment, command line or cwd holds ``marker``."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            if stat[stat.rindex(")") + 2 :].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue
        # redis-server rewrites its environ area with its process title: its cwd tells.
        if marker in environ or marker in cmdline or cwd.startswith(marker):
            found[int(entry.name)] = cmdline.strip()
    return found


@dataclass
class UpStack:
    """A running ``hsts-orchestrator up --demo`` and what it printed."""

    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    api_port: int
    flower_port: int
    env: dict[str, str] = field(default_factory=dict)
    token: str = ""
    api_url: str = ""
    docroots: dict[str, Path] = field(default_factory=dict)
    child_pids: dict[str, int] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client_env(self, **extra: str) -> dict[str, str]:
        """What the banner's two exports give a user's shell."""
        return clean_env(**{"ORCH_API_URL": self.api_url, "ORCH_API_TOKEN": self.token, **extra})

    def local_env(self) -> dict[str, str]:
        """The environment of commands that work on the stack's database (token create)."""
        return clean_env(ORCH_DATA_DIR=str(self.data_dir))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not re.search(r"^\[up\]\s+ready$", self.log(), re.M):
            if self.process.poll() is not None:
                raise AssertionError(f"up exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"up not ready within {READY_TIMEOUT} s:\n{self.tail()}")
            time.sleep(0.2)
        text = self.log()
        sourced = (self.data_dir / "demo.env").read_text()  # what the banner says to source
        self.token = _one(r"^export ORCH_API_TOKEN=(\S+)$", sourced)
        self.api_url = _one(r"^export ORCH_API_URL=(\S+)$", sourced)
        for name in ("node-a", "node-b"):
            self.docroots[name] = Path(_one(rf"^  {name}\s+\S+\s+docroot (\S+)", text))
        self.child_pids = {
            name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", text)
        }

    def try_it(self) -> list[str]:
        """The banner's "Try it" lines, as a user pastes them."""
        text = self.log()
        block = text[text.index("Try it in another terminal") :].split("\n")[1:]
        return [line.strip() for line in block[: block.index("or with curl:")]]

    def interrupt(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ctrl-C, as a terminal sends it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def tail(self, lines: int = 150) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def cleanup(self) -> None:
        """Whatever happened: stop up, then kill any process of this run that is left."""
        with contextlib.suppress(Exception):
            self.interrupt()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in marked_processes(str(self.data_dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _one(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.M)
    assert match, f"not in the output of up: {pattern}\n{text[-4000:]}"
    return match.group(1)


def start_up(workdir: Path) -> UpStack:
    """``hsts-orchestrator up --demo`` on free ports, with the embedded redis and SQLite."""
    data_dir = workdir / "var"
    api_port, flower_port = free_port(), free_port()
    while flower_port == api_port:
        flower_port = free_port()
    env = clean_env(ORCH_DATA_DIR=str(data_dir), **FAST)
    log_path = workdir / "up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orchestrator.cli",
                "up",
                "--demo",
                "--port",
                str(api_port),
                "--flower-port",
                str(flower_port),
                "--grace",
                "15",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    return UpStack(process, log_path, data_dir, api_port, flower_port, env)


@pytest.fixture(scope="module")
def up_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    """One ``up --demo`` for the module's tests; stopped (and anything left killed) after."""
    stack = start_up(tmp_path_factory.mktemp("up"))
    try:
        stack.wait_ready()
        yield stack
    except BaseException:
        print(stack.tail())
        raise
    finally:
        stack.cleanup()


@pytest.fixture
def stack(up_stack: UpStack, request: pytest.FixtureRequest) -> Iterator[UpStack]:
    """The module's stack; its log is printed when a test fails."""
    yield up_stack
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(up_stack.tail())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
