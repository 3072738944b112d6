"""Start and stop several simulated nodes in this process, all on one thread and event loop."""

# One loop serves every node of a cluster: the GIL lets one node run at a time anyway, and
# nodes on threads of their own handed the GIL to each other at almost every system call
# (tens of futex calls and context switches per transfer).

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from hstssim.config import NodeConfig
from hstssim.context import NodeContext
from hstssim.network import Network
from hstssim.node import SimNode

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def bind(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to host:port (port 0: a free one), not yet listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else Nagle + delayed
    # ACK add ~40 ms to every keep-alive response).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def url_host(host: str) -> str:
    """Return the host as a URL shows it (wildcard addresses become loopback)."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - mapping the wildcard, not binding to it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class LoopHost:
    """A thread running one event loop, on which nodes serve."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="hstssim-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Run the loop until close()."""
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def close(self) -> None:
        """Stop the loop (its nodes have stopped) and wait for the thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


class RunningNode:
    """A started node: its name, config (with the real ports), URLs and credentials."""

    def __init__(
        self, config: NodeConfig, network: Network | None = None, host: LoopHost | None = None
    ) -> None:
        self.config = copy.deepcopy(config)
        self._api_sock = bind(config.host, config.api_port)
        try:
            self._data_sock = bind(config.host, config.fasp_port)
        except OSError:
            self._api_sock.close()
            raise
        self.config.api_port = self._api_sock.getsockname()[1]
        self.config.fasp_port = self._data_sock.getsockname()[1]
        self.config.docroot = Path(self.config.docroot)
        self.config.docroot.mkdir(parents=True, exist_ok=True)
        self._node = SimNode(self.config, self.api_url, network)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._own_host = host is None
        self._host = host
        self._serving: concurrent.futures.Future[None] | None = None

    @property
    def name(self) -> str:
        """Return the node's name."""
        return self.config.name

    @property
    def host(self) -> str:
        """Return the host the node listens on."""
        return self.config.host

    @property
    def api_port(self) -> int:
        """Return the Node API port."""
        return self.config.api_port

    @property
    def fasp_port(self) -> int:
        """Return the data-plane port."""
        return self.config.fasp_port

    @property
    def api_url(self) -> str:
        """Return the Node API base URL, e.g. http://127.0.0.1:40123."""
        return f"{self.config.scheme}://{url_host(self.config.host)}:{self.api_port}"

    @property
    def admin_token(self) -> str:
        """Return the credential of the admin API."""
        return self.config.admin_token

    @property
    def context(self) -> NodeContext:
        """Return the node's live state (read it only; it belongs to the node's thread)."""
        return self._node.ctx

    def start(self) -> None:
        """Start serving on the host's loop (a loop of its own when none was given) and wait
        until the API and data plane listen."""
        if self._host is None:
            self._host = LoopHost()
        self._serving = asyncio.run_coroutine_threadsafe(self._run(), self._host.loop)
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            self.request_stop()
            raise RuntimeError(f"node {self.name} did not start") from self._error

    async def _run(self) -> None:
        """Serve until the node stops."""
        try:
            await self._node.serve(self._api_sock, self._data_sock, self._ready.set)
        except BaseException as exc:
            self._error = exc
        finally:
            self._api_sock.close()
            self._data_sock.close()
            self._ready.set()

    def request_stop(self) -> None:
        """Ask the node to stop, without waiting."""
        self._node.request_stop()

    def join(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait until the node has stopped."""
        if self._serving is None:  # never started: only the sockets to free
            self._api_sock.close()
            self._data_sock.close()
        else:
            concurrent.futures.wait([self._serving], timeout)
        if self._own_host and self._host is not None:
            self._host.close()

    def stop(self) -> None:
        """Stop the node and wait for it."""
        self.request_stop()
        self.join()


class SimCluster:
    """Several running nodes, addressed by name; a context manager that stops them on exit."""

    def __init__(
        self,
        nodes: list[RunningNode],
        network: Network | None = None,
        host: LoopHost | None = None,
    ) -> None:
        self._nodes = {node.name: node for node in nodes}
        self.network = network or Network()
        self._host = host

    @classmethod
    def start(cls, configs: Iterable[NodeConfig]) -> SimCluster:
        """Start one node per config (names must differ), all on one network, and return the
        cluster."""
        configs = list(configs)
        names = [c.name for c in configs]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique: {names}")
        nodes: list[RunningNode] = []
        network = Network()
        host = LoopHost()
        try:
            for config in configs:
                nodes.append(RunningNode(config, network, host))
            for node in nodes:
                node.start()
        except BaseException:
            cls(nodes, network, host).stop()
            raise
        return cls(nodes, network, host)

    def __getitem__(self, name: str) -> RunningNode:
        return self._nodes[name]

    def __iter__(self) -> Iterator[RunningNode]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def nodes(self) -> list[RunningNode]:
        """Return the nodes in start order."""
        return list(self._nodes.values())

    def stop(self) -> None:
        """Stop every node (all at once) and wait for them."""
        for node in self._nodes.values():
            node.request_stop()
        for node in self._nodes.values():
            node.join()
        if self._host is not None:
            self._host.close()

    def __enter__(self) -> SimCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
