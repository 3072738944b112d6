"""Child processes of ``up``: started in their own process groups, their output prefixed and
coloured, watched without being reaped, and stopped TERM-then-KILL.

Each child is the leader of a new session (so a terminal's Ctrl-C reaches only ``up``, which
stops the children in order). Exits are observed with ``waitid(WNOWAIT)``: an exited leader
stays a zombie, so its process group id cannot be reused, and a final SIGKILL to the group
safely takes any leftover (a worker's pool process) with it before the leader is reaped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.text import Text

from orchestrator.logsetup import redact

COLOURS = {
    "up": "bold",
    "redis": "red",
    "api": "cyan",
    "worker": "green",
    "beat": "magenta",
    "flower": "blue",
    "nodes": "yellow",
}
PREFIX_WIDTH = 9  # "[worker] "
LineHook = Callable[[str], bool]  # True: the line was consumed, do not print it
RESTART_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # seconds before the 1st, 2nd, ... restart
STABLE_AFTER = 60.0  # a child that ran this long before it exited starts its back-off over
DUMP_SECONDS = 1.0  # for a hung child to print its stacks before it is killed
MAX_RESTARTS = 10  # in a row without a stable run: then the supervisor gives up


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    on_line: LineHook | None = None
    cwd: Path | None = None
    stop_last: bool = False
    dump_signal: signal.Signals | None = None  # asks it to print its threads' stacks
    reader: threading.Thread | None = None
    stopping: bool = False
    reaped_code: int | None = field(default=None)
    spoke: bool = False  # it has printed a line
    restarts: int = 0  # restarts in a row without a stable run
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        return self.popen.pid

    def exit_status(self) -> int | None:
        """The exit status if the process has ended (it is not reaped), else None."""
        if self.reaped_code is not None:
            return self.reaped_code
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return self.popen.returncode if self.popen.returncode is not None else -1
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            return info.si_status
        return -info.si_status  # killed by a signal, as subprocess reports it

    @property
    def running(self) -> bool:
        """Whether the leader is still running."""
        return self.exit_status() is None


def describe_exit(code: int | None) -> str:
    """'exit 0', 'on SIGTERM' (a server that re-raises the signal it stopped on), ..."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"on {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


class Supervisor:
    """Starts children, prints their lines with a prefix, and stops them all."""

    def __init__(self, console: Console, *, grace: float = 10.0, cwd: Path | None = None) -> None:
        self.console = console
        self.grace = grace
        self.cwd = cwd
        self.children: list[Child] = []
        self.hurry = threading.Event()  # a second Ctrl-C: kill at once
        self.last_line_at = time.monotonic()  # when a child last printed a line
        self._print_lock = threading.Lock()

    # -- output ----------------------------------------------------------------------------

    def log(self, name: str, line: str) -> None:
        """Print one line with the child's coloured prefix (secrets masked: children print too)."""
        prefix = Text(f"[{name}]".ljust(PREFIX_WIDTH), style=COLOURS.get(name, "white"))
        with self._print_lock:
            self.console.print(Text.assemble(prefix, redact(line)), soft_wrap=True, highlight=False)

    def note(self, message: str) -> None:
        """A line from the supervisor itself."""
        self.log("up", message)

    def block(self, lines: Sequence[str | Text]) -> None:
        """Print several lines together, unprefixed (nothing interleaves them)."""
        with self._print_lock:
            for line in lines:
                self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    # -- starting and watching -----------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        on_line: LineHook | None = None,
        stop_last: bool = False,
        cwd: Path | None = None,
        dump_signal: signal.Signals | None = None,
    ) -> Child:
        """Start a child in its own session; its stdout and stderr are printed line by line.

        ``dump_signal``: a signal on which the child prints its threads' stacks; one that does
        not stop within the grace period is sent it before it is killed, so its log says where
        it hung.
        """
        popen = subprocess.Popen(  # noqa: S603 (our own argv, no shell)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd or self.cwd,
            start_new_session=True,
        )
        child = Child(
            name=name,
            argv=argv,
            popen=popen,
            env=env,
            on_line=on_line,
            cwd=cwd,
            stop_last=stop_last,
            dump_signal=dump_signal,
        )
        child.reader = threading.Thread(
            target=self._pump, args=(child, on_line), name=f"log-{name}", daemon=True
        )
        child.reader.start()
        self.children.append(child)
        self.note(f"started {name} (pid {child.pid})")
        return child

    def _pump(self, child: Child, on_line: LineHook | None) -> None:
        stream = child.popen.stdout
        assert stream is not None
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                child.spoke = True
                self.last_line_at = time.monotonic()
                if on_line is not None and on_line(line):
                    continue
                self.log(child.name, line)

    def exited(self) -> Child | None:
        """A child that ended while nobody asked it to, if any."""
        for child in self.children:
            if not child.stopping and not child.running:
                return child
        return None

    def restart_delay(self, child: Child) -> float | None:
        """How long to wait before starting an exited child again; None: give up on it."""
        if time.monotonic() - child.started_at >= STABLE_AFTER:
            return RESTART_DELAYS[0]
        if child.restarts >= MAX_RESTARTS:
            return None
        return RESTART_DELAYS[min(child.restarts, len(RESTART_DELAYS) - 1)]

    def restart(self, child: Child) -> Child:
        """Start an exited child again with its command, environment and place in the order."""
        ran_long = time.monotonic() - child.started_at >= STABLE_AFTER
        child.stopping = True
        self._reap(child)
        fresh = self.start(
            child.name,
            child.argv,
            child.env,
            on_line=child.on_line,
            stop_last=child.stop_last,
            cwd=child.cwd,
            dump_signal=child.dump_signal,
        )
        fresh.restarts = 1 if ran_long else child.restarts + 1
        self.children.remove(fresh)
        self.children[self.children.index(child)] = fresh
        return fresh

    # -- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every child: first the services, then what they need (the broker).

        Each gets SIGTERM, then SIGKILL (its whole group) after the grace period.
        """
        first = [c for c in self.children if not c.stop_last]
        last = [c for c in self.children if c.stop_last]
        for batch in (first, last):
            self._stop_batch(list(reversed(batch)))

    def _stop_batch(self, batch: list[Child]) -> None:
        if not batch:
            return
        for child in batch:
            child.stopping = True
            if child.running:
                self.note(f"stopping {child.name} (pid {child.pid})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(c.running for c in batch):
            if self.hurry.is_set() or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for child in batch:
            if child.running:
                why = (
                    "asked to hurry" if self.hurry.is_set() else f"not stopped after {self.grace} s"
                )
                self._dump_stacks(child)
                self.note(f"{child.name} {why}: killing it")
                self._kill_group(child)
        for child in batch:
            self._reap(child)

    def _dump_stacks(self, child: Child) -> None:
        """Ask a hung child where its threads are, and give it a moment to print that."""
        if child.dump_signal is None or self.hurry.is_set():
            return
        self.note(f"{child.name} is still running: asking it for its threads' stacks")
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, child.dump_signal)
        deadline = time.monotonic() + DUMP_SECONDS
        while child.running and time.monotonic() < deadline:
            time.sleep(0.05)

    def _kill_group(self, child: Child) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)

    def _reap(self, child: Child) -> None:
        if child.reaped_code is not None:
            return
        deadline = time.monotonic() + 10
        while child.running and time.monotonic() < deadline:
            time.sleep(0.02)
        if child.running:  # pragma: no cover - SIGKILL cannot be ignored
            self._kill_group(child)
        # The leader is a zombie now: its group id is still ours. Take any leftover with it.
        self._kill_group(child)
        code = child.popen.wait()
        child.reaped_code = code
        if child.reader is not None:
            child.reader.join(timeout=5)
        self.note(f"{child.name} stopped ({describe_exit(code)})")
