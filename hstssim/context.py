"""The shared state of one node that its API, transfer manager and data plane all use."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hstssim.config import NodeConfig
from hstssim.counters import Counters
from hstssim.faults import FaultRegistry
from hstssim.network import Network
from hstssim.store import TransferStore
from hstssim.tokens import TokenIssuer


@dataclass
class NodeContext:
    """Configuration, counters, faults, transfer records, token keys and links of one node."""

    config: NodeConfig
    api_url: str = ""
    counters: Counters = field(default_factory=Counters)
    faults: FaultRegistry = field(default_factory=FaultRegistry)
    store: TransferStore = field(default_factory=TransferStore)
    network: Network = field(default_factory=Network)  # shared by the nodes of a cluster
    tokens: TokenIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenIssuer(self.config.token_key, self.config.node_id)

    def prune(self) -> None:
        """Forget transfers that ended longer ago than the retention period."""
        self.store.drop_ended_before(time.time() - self.config.retention_seconds)
