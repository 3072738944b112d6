"""The stack of ``hsts-orchestrator up``: child processes started in order and supervised.

Order: the embedded redis-server (unless ORCH_REDIS_URL is set), the database migration, then
the API, one worker, beat and Flower (with ``--demo``: two hstssim nodes, registered, and an
admin token); "ready" once the API's /readyz answers. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

import httpx
from pydantic import SecretStr
from sqlalchemy.exc import SQLAlchemyError

from orchestrator import broker
from orchestrator.bootstrap import (
    describe_database,
    ensure_secret_key,
    migrate,
    opened,
    prepare_data_dir,
)
from orchestrator.cli import demo, roles
from orchestrator.cli.banner import banner_lines
from orchestrator.cli.console import CliError, fail, out, usage
from orchestrator.cli.local import database_failure
from orchestrator.cli.redis_server import (
    EmbeddedRedis,
    describe_broker,
    embedded_redis,
)
from orchestrator.cli.supervisor import Child, Supervisor, describe_exit
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.errors import ConfigError
from orchestrator.logsetup import (
    configure_logging,
    register_secret,
    register_url_password,
    stream_is_terminal,
)
from orchestrator.services.nodes.registry import ensure_node
from orchestrator.services.schedules.config_file import load_file
from orchestrator.settings import Settings

T = TypeVar("T")
START_TIMEOUT = 60.0  # each start-up step (redis, demo nodes); the API gets --ready-timeout
SETTLED_AFTER = 1.5  # seconds without a child's line: the start-up logs have settled
SETTLE_AT_MOST = 15.0  # the banner comes by then even if the children keep talking


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


@dataclass
class Stack:
    """What ``up`` started and what it prints."""

    settings: Settings
    env: dict[str, str]
    supervisor: Supervisor
    stop: threading.Event
    api_url: str = ""
    flower_url: str = ""
    flower_password: str = ""
    broker_embedded: bool = False
    token: str | None = None
    fresh_token: bool = False
    new_token: bool = False  # --new-token
    env_file: Path | None = None
    show_banner: threading.Event = field(default_factory=threading.Event)
    nodes: list[dict[str, Any]] = field(default_factory=list)

    def wait_for(self, check: Callable[[], T | None], *, timeout: float, what: str) -> T:
        """Call ``check`` until it answers; a child that exits, Ctrl-C or the timeout ends it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.stop.is_set():
                raise Stopped
            result = check()
            if result:
                return result
            gone = self.supervisor.exited()
            if gone is not None:
                fail(
                    f"{gone.name} exited ({describe_exit(gone.exit_status())}) while waiting "
                    f"for {what}; its [{gone.name}] lines above say why"
                )
            if time.monotonic() > deadline:
                fail(f"{what}: not within {timeout:.0f} s")
            time.sleep(0.1)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold ``data_dir/up.lock`` while this process lives: one stack (one beat) per data dir."""
    handle = (data_dir / "up.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        fail(
            f"another `hsts-orchestrator up` (pid {holder}) runs on {data_dir}: stop it first, "
            "or give this one its own ORCH_DATA_DIR"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def local_address(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    if host in ("0.0.0.0", ""):  # noqa: S104 (comparing, not binding)
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@contextmanager
def banner_requests(show: threading.Event) -> Iterator[None]:
    """SIGUSR1, or Enter when stdin is a terminal, asks for the banner again."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        show.set()

    def read_keys() -> None:
        # os.read, not sys.stdin: a daemon thread must not hold stdin's buffer lock at exit.
        while os.read(0, 1024):
            show.set()

    if sys.stdin is not None and sys.stdin.isatty():
        threading.Thread(target=read_keys, name="banner-keys", daemon=True).start()
    previous = signal.signal(signal.SIGUSR1, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


@contextmanager
def stop_signals(stop: threading.Event, hurry: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP ask the stack to stop; a second one kills at once."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_stack(
    *,
    demo: bool,
    host: str,
    port: int,
    flower_port: int,
    workers: int,
    grace: float,
    ready_timeout: float,
    new_token: bool = False,
) -> int:
    """Start the stack, supervise it until Ctrl-C / SIGTERM, stop it; the exit status."""
    settings = roles.role_settings()
    configure_logging(settings, "up")
    for name, value in (("--port", port), ("--flower-port", flower_port)):
        address = host if name == "--port" else "127.0.0.1"
        if not port_is_free(address, value):
            usage(f"{name} {value}: something already listens on {address}:{value}")
    if port == flower_port:
        usage("--port and --flower-port must differ")
    prepare_data_dir(settings)  # 0700: the database, key file and broker password live there
    lock = lock_data_dir(settings.data_dir)
    supervisor = Supervisor(out, grace=grace)
    env = dict(os.environ)  # children inherit ORCH_* plus what the stack decides below
    env.update(
        {
            "ORCH_DATA_DIR": str(settings.data_dir),
            "ORCH_DATABASE_URL": settings.effective_database_url(),
            "PYTHONUNBUFFERED": "1",
            # The children write to pipes: "auto" follows this terminal, not theirs.
            "ORCH_LOG_FORMAT": _children_log_format(settings),
        }
    )
    stack = Stack(
        settings=settings,
        env=env,
        supervisor=supervisor,
        stop=threading.Event(),
        new_token=new_token,
    )
    code = 0
    with stop_signals(stack.stop, supervisor.hurry), banner_requests(stack.show_banner):
        try:
            _start(
                stack,
                demo=demo,
                host=host,
                port=port,
                flower_port=flower_port,
                workers=workers,
                ready_timeout=ready_timeout,
            )
            _settle(stack)
            _show_banner(stack)
            supervisor.note("ready")
            code = _supervise(stack)
        except Stopped:
            supervisor.note("stop requested while starting")
        except CliError as exc:
            supervisor.note(f"error: {exc.message}")
            code = exc.code
        finally:
            supervisor.note("stopping the stack")
            supervisor.stop()
            supervisor.note("stopped")
            lock.close()
    return code


def _children_log_format(settings: Settings) -> str:
    if settings.log_format != "auto":
        return settings.log_format
    return "plain" if stream_is_terminal(sys.stdout) else "json"


def _start(
    stack: Stack,
    *,
    demo: bool,
    host: str,
    port: int,
    flower_port: int,
    workers: int,
    ready_timeout: float,
) -> None:
    supervisor = stack.supervisor
    _broker(stack)
    settings = stack.settings
    supervisor.note(f"database {describe_database(settings)}: migrating")
    try:
        migrate(settings)
    except SQLAlchemyError as exc:
        fail(database_failure(exc, settings))
    ensure_secret_key(settings)
    _check_replications(stack)
    nodes: queue.Queue[dict[str, Any]] = queue.Queue()
    if demo:
        supervisor.start(
            "nodes",
            [
                *roles.python_module("hstssim"),
                "--nodes",
                "2",
                "--demo",
                "--json",
                "--root",
                str(settings.data_dir / "demo-nodes"),
            ],
            stack.env,
            on_line=lambda line: _node_line(line, nodes),
        )
    supervisor.start("api", roles.api_argv(host=host, port=port), stack.env)
    log_level = settings.log_level
    supervisor.start(
        "worker",
        roles.worker_argv(
            concurrency=workers,
            name=f"worker-{port}",
            log_level=log_level,
            extra=("--without-mingle", "--without-gossip"),
        ),
        stack.env,
        dump_signal=signal.SIGUSR1,  # Celery's worker prints every thread's stack on it
    )
    stack.flower_password = roles.new_password()
    register_secret(stack.flower_password)
    supervisor.start(
        "flower",
        roles.flower_argv(address="127.0.0.1", port=flower_port),
        {**stack.env, **roles.flower_env(roles.FLOWER_USER, stack.flower_password)},
    )
    stack.api_url = f"http://{local_address(host)}:{port}"
    stack.flower_url = f"http://127.0.0.1:{flower_port}"
    if demo:
        _register_demo_nodes(stack, nodes)
    # Beat applies the replications file when it starts: after the demo nodes exist.
    supervisor.start(
        "beat",
        roles.beat_argv(schedule=settings.data_dir / "celerybeat-schedule", log_level=log_level),
        stack.env,
    )
    stack.wait_for(lambda: _ready(stack.api_url), timeout=ready_timeout, what="the API's /readyz")


def _broker(stack: Stack) -> None:
    """Use ORCH_REDIS_URL, or start a redis-server of the stack's own."""
    settings = stack.settings
    if settings.redis_url:
        url = settings.redis_url
        stack.supervisor.note(f"broker {describe_broker(url)}")
        stack.wait_for(
            lambda: broker.answers(settings),
            timeout=START_TIMEOUT,
            what=f"the broker at {describe_broker(url)} to answer PING (check ORCH_REDIS_URL)",
        )
        return
    redis = _start_redis(stack)
    stack.settings = settings.model_copy(update={"redis_url": redis.url})
    stack.env["ORCH_REDIS_URL"] = redis.url
    stack.broker_embedded = True


def _start_redis(stack: Stack) -> EmbeddedRedis:
    """The stack's own redis-server on a free loopback port (another port if that one fails)."""
    for _ in range(3):  # the free port may be taken between the check and the start
        try:
            redis = embedded_redis(stack.settings, free_port())
        except ConfigError as exc:
            fail(str(exc))
        register_url_password(redis.url)  # masked in every line of up (banner: describe_broker)
        child = stack.supervisor.start(
            "redis", redis.argv(), stack.env, stop_last=True, cwd=redis.workdir
        )
        deadline = time.monotonic() + START_TIMEOUT
        own = stack.settings.model_copy(update={"redis_url": redis.url})
        while child.running and not broker.answers(own):
            if stack.stop.is_set():
                raise Stopped
            if time.monotonic() > deadline:
                fail(f"the embedded redis-server did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.1)
        if child.running:
            return redis
        child.stopping = True  # it ended by itself; stop() reaps it
        stack.supervisor.note("the redis-server did not start; trying another port")
    raise CliError("the embedded redis-server would not start; its [redis] lines above say why")


def _node_line(line: str, nodes: queue.Queue[dict[str, Any]]) -> bool:
    """hstssim --json prints one object per node: keep it (it holds the node's secrets)."""
    if not line.startswith("{"):
        return False
    try:
        data = json.loads(line)
    except ValueError:
        return False
    if not isinstance(data, dict) or "api_url" not in data:
        return False
    nodes.put(data)
    return True


def _check_replications(stack: Stack) -> None:
    """Stop before anything starts if the replications file is not valid."""
    path = stack.settings.replications_file
    if path is None or not path.is_file():
        return
    schedules = load_file(path)  # ReplicationsFileError says file, entry and field
    stack.supervisor.note(f"replications: {len(schedules)} schedule(s) in {path}, applied by beat")


def _register_demo_nodes(stack: Stack, nodes: queue.Queue[dict[str, Any]]) -> None:
    found: dict[str, dict[str, Any]] = {}

    def collect() -> bool:
        while True:
            try:
                node = nodes.get_nowait()
            except queue.Empty:
                return len(found) == len(demo.NODES)
            found[node["name"]] = node

    stack.wait_for(collect, timeout=START_TIMEOUT, what="the demo nodes to answer")
    with opened(stack.settings) as ctx:
        for name in demo.NODES:
            node = found[name]
            if not node.get("answers"):
                fail(f"demo node {name} does not answer at {node['api_url']}")
            created = ensure_node(
                ctx,
                demo_node(
                    name, node["api_url"], node["host"], node["node_user"], node["node_password"]
                ),
            )
            stack.supervisor.note(
                f"{'registered' if created else 'updated'} {name} at {node['api_url']}"
            )
            stack.nodes.append(node)
        stack.env_file = stack.settings.data_dir / demo.ENV_FILE
        previous = demo.previous_token(stack.env_file)
        stack.token, stack.fresh_token = demo.demo_token(ctx, previous, new=stack.new_token)
    demo.write_env_file(
        stack.env_file,
        api_url=stack.api_url,
        token=stack.token,
        broker_url=stack.settings.redis_url or "",
    )


def demo_node(name: str, api_url: str, host: str, user: str, password: str) -> NodeRegistration:
    """A simulated node as the demo registers it: node user, transfer host, whole docroot."""
    return NodeRegistration.model_validate(
        {
            "name": name,
            "base_url": api_url,
            "auth_kind": "node_user",
            "username": user,
            "secret": SecretStr(password),
            "transfer_host": host,
        }
    )


def _ready(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _settle(stack: Stack) -> None:
    """Wait until every child has spoken and then all are quiet a while (or long enough)."""
    deadline = time.monotonic() + SETTLE_AT_MOST
    supervisor = stack.supervisor
    while time.monotonic() - supervisor.last_line_at < SETTLED_AFTER or not all(
        child.spoke for child in supervisor.children
    ):
        if stack.stop.wait(0.1):
            raise Stopped
        if time.monotonic() > deadline:
            return


def _show_banner(stack: Stack) -> None:
    stack.supervisor.block(banner_lines(stack))


def _supervise(stack: Stack) -> int:
    """Run until Ctrl-C / SIGTERM (exit 0); a child that exits on its own is started again
    after a back-off, as systemd or compose would; the stack stops (exit 1) when a child keeps
    failing or cannot be restarted (the demo nodes: their ports and passwords would change)."""
    supervisor = stack.supervisor
    due: list[tuple[float, Child]] = []
    while not stack.stop.wait(0.25):
        if stack.show_banner.is_set():
            stack.show_banner.clear()
            _show_banner(stack)
        gone: Child | None = supervisor.exited()
        if gone is not None:
            how = describe_exit(gone.exit_status())
            delay = None if gone.name == "nodes" else supervisor.restart_delay(gone)
            if delay is None:
                supervisor.note(
                    f"{gone.name} exited on its own ({how}) and is not restarted "
                    f"(after {gone.restarts} restart(s)); stopping the stack"
                )
                return 1
            supervisor.note(
                f"{gone.name} exited on its own ({how}); restarting it in {delay:.0f} s"
            )
            gone.stopping = True  # not reported again while it waits
            due.append((time.monotonic() + delay, gone))
        now = time.monotonic()
        for entry in [e for e in due if e[0] <= now]:
            due.remove(entry)
            fresh = supervisor.restart(entry[1])
            supervisor.note(f"restarted {fresh.name} (restart {fresh.restarts} in a row)")
    supervisor.note("stop requested")
    return 0
