"""The supervisor of ``up``: prefixed lines, a child that ignores SIGTERM is killed with its
whole process group after the grace period, a child that exits on its own is noticed; and
``up`` stops what it started when start-up fails."""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.cli.supervisor import MAX_RESTARTS, Supervisor
from tests.cli.conftest import clean_env, cli, free_port, marked_processes

STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(f"grandchild {child.pid}", flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def test_term_then_kill_takes_the_whole_group() -> None:
    screen = io.StringIO()
    supervisor = Supervisor(Console(file=screen, width=200), grace=0.5)
    child = supervisor.start("worker", [sys.executable, "-c", STUBBORN], os.environ)
    _wait(lambda: "grandchild" in screen.getvalue())
    grandchild = int(screen.getvalue().split("grandchild ")[1].split()[0])
    assert child.running and _alive(grandchild)

    supervisor.stop()

    text = screen.getvalue()
    assert "[worker] grandchild" in text  # the child's lines, prefixed
    assert "[up]     worker not stopped after 0.5 s: killing it" in text
    assert "[up]     worker stopped (on SIGKILL)" in text
    assert not child.running
    _wait(lambda: not _alive(grandchild))


HUNG = """
import faulthandler, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
faulthandler.register(signal.SIGUSR1, file=sys.stdout, all_threads=True)
print("ready", flush=True)
def stuck_in_here():
    time.sleep(120)
stuck_in_here()
"""


def test_a_hung_child_prints_where_it_hangs_before_it_is_killed() -> None:
    screen = io.StringIO()
    supervisor = Supervisor(Console(file=screen, width=200), grace=0.5)
    child = supervisor.start(
        "worker", [sys.executable, "-c", HUNG], os.environ, dump_signal=signal.SIGUSR1
    )
    _wait(lambda: "[worker] ready" in screen.getvalue())

    supervisor.stop()

    text = screen.getvalue()
    asked = text.index("[up]     worker is still running: asking it for its threads' stacks")
    assert text.index("in stuck_in_here", asked) < text.index("worker not stopped after 0.5 s")
    assert "[up]     worker stopped (on SIGKILL)" in text
    assert not child.running


def test_a_child_that_exits_on_its_own_is_noticed_and_not_signalled_again() -> None:
    screen = io.StringIO()
    supervisor = Supervisor(Console(file=screen, width=200), grace=5)
    quick = supervisor.start("beat", [sys.executable, "-c", "print('bye')"], os.environ)
    steady = supervisor.start(
        "api", [sys.executable, "-c", "import time; time.sleep(60)"], os.environ
    )
    _wait(lambda: supervisor.exited() is quick)
    assert quick.exit_status() == 0 and steady.running
    started = time.monotonic()
    supervisor.stop()
    assert time.monotonic() - started < 5  # SIGTERM ended the sleeper at once
    assert "[beat]   bye" in screen.getvalue()
    assert "api stopped (on SIGTERM)" in screen.getvalue()


def test_an_exited_child_restarts_in_its_place_with_a_growing_back_off() -> None:
    screen = io.StringIO()
    supervisor = Supervisor(Console(file=screen, width=200), grace=5)
    first = supervisor.start("beat", [sys.executable, "-c", "print('bye')"], os.environ)
    steady = supervisor.start(
        "api", [sys.executable, "-c", "import time; time.sleep(60)"], os.environ
    )
    delays = []
    child = first
    for _ in range(MAX_RESTARTS):
        _wait(lambda child=child: supervisor.exited() is child)
        delays.append(supervisor.restart_delay(child))
        child = supervisor.restart(child)
    _wait(lambda: supervisor.exited() is child)

    assert delays[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert supervisor.restart_delay(child) is None  # it keeps failing: give up on it
    assert [c.name for c in supervisor.children] == ["beat", "api"]  # the stop order holds
    assert supervisor.children[0] is child and child.restarts == MAX_RESTARTS
    assert child.reader is not None  # the last run's words are read once its pipe closes
    child.reader.join(timeout=5)
    assert screen.getvalue().count("[beat]   bye") == MAX_RESTARTS + 1
    supervisor.stop()
    assert not steady.running


def test_up_refuses_a_port_in_use_before_starting_anything() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("up", "--port", str(port), env=clean_env(ORCH_DATA_DIR="/nonexistent/x"))
    assert result.code == 2
    assert result.stderr.strip() == (
        f"error: --port {port}: something already listens on 127.0.0.1:{port}"
    )


@pytest.mark.timeout(120)
def test_a_failed_start_stops_what_was_started_and_exits_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    env = clean_env(
        ORCH_DATA_DIR=str(data_dir),
        ORCH_DATABASE_URL=f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}",
    )
    result = cli("up", "--port", str(free_port()), "--flower-port", str(free_port()), env=env)
    assert result.code == 1, result.output
    assert "[up]     started redis" in result.stdout
    assert "[up]     error: database sqlite:///" in result.stdout
    assert "[up]     redis stopped" in result.stdout
    assert marked_processes(str(data_dir)) == {}
    assert "killing it" not in result.stdout  # the redis-server stopped on SIGTERM
