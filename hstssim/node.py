"""One simulated node: its Node API server, data plane and transfer manager on one event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn

from hstssim.app import create_app
from hstssim.config import NodeConfig
from hstssim.connection import TransportH11Protocol
from hstssim.context import NodeContext
from hstssim.dataplane import DataPlaneServer
from hstssim.instrument import NodeApiGate, endpoint_keys
from hstssim.manager import TransferManager
from hstssim.network import Network, NodeAddress

GRACEFUL_SHUTDOWN_SECONDS = 1


class SimNode:
    """Wires a node's parts together and runs them until asked to stop."""

    def __init__(self, config: NodeConfig, api_url: str, network: Network | None = None) -> None:
        self.ctx = NodeContext(config, api_url, network=network or Network())
        self.ctx.network.register(NodeAddress(config.name, config.node_id, config.fasp_port))
        self.ctx.network.set_node(config.name, config.inbound_kbps, config.outbound_kbps)
        for peer, kbps in config.links.items():
            self.ctx.network.set_link(config.name, peer, kbps)
        self.manager = TransferManager(self.ctx)
        self.dataplane = DataPlaneServer(self.ctx)
        self.app = create_app(self.ctx, self.manager)
        self.ctx.faults.known_endpoints = endpoint_keys(self.app)
        for fault in config.faults:
            self.ctx.faults.add(fault)
        self._server: uvicorn.Server | None = None

    async def serve(
        self, api_sock: socket.socket, data_sock: socket.socket, started: Callable[[], None]
    ) -> None:
        """Serve the API and the data plane on bound sockets; call started() once both listen."""
        config = self.ctx.config
        await self.dataplane.start(data_sock)
        self._server = uvicorn.Server(
            uvicorn.Config(
                NodeApiGate(self.app, self.ctx),
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                http=TransportH11Protocol,
                ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
                ssl_keyfile=str(config.tls_key) if config.tls_key else None,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            )
        )
        serving = asyncio.create_task(self._server.serve(sockets=[api_sock]))
        try:
            while not self._server.started and not serving.done():
                await asyncio.sleep(0.005)
            if self._server.started:
                started()
            await serving
        finally:
            await self.manager.shutdown()
            await self.dataplane.stop()

    def request_stop(self) -> None:
        """Ask the node to stop (safe from any thread)."""
        if self._server is not None:
            self._server.should_exit = True
