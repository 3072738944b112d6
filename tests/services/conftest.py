"""Services over a real database (SQLite and PostgreSQL) and two real hstssim nodes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hstssim.cluster import RunningNode, SimCluster
from orchestrator.db.tables import LinkRateRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.jobs import create_job
from tests.support.sim import SimAdmin, fresh_admins
from tests.support.stack import RecordingEnqueue, build_context, register_sim_node


@dataclass
class Stack:
    """Services, their recorded tasks, and the two nodes with their admin handles."""

    ctx: ServiceContext
    tasks: RecordingEnqueue
    a: RunningNode
    b: RunningNode
    admin_a: SimAdmin
    admin_b: SimAdmin
    a_id: int
    b_id: int

    @property
    def root_a(self) -> Path:
        return self.a.config.docroot

    @property
    def root_b(self) -> Path:
        return self.b.config.docroot

    def new_job(self, folder: str, **spec: Any) -> str:
        """A job copying node-a:folder to node-b:in-folder, created as the API would."""
        data = {
            "source_node": "node-a",
            "source_paths": [folder],
            "destination_node": "node-b",
            "destination_path": f"in-{folder}",
            **spec,
        }
        return create_job(self.ctx, JobSpec.model_validate(data)).job.id

    def measured_link(
        self, bytes_per_second: float, *, transfers: int = 3, at: datetime | None = None
    ) -> None:
        """node-a → node-b as if its recent transfers had moved this many bytes per second."""
        with self.ctx.sessions() as session:
            session.add(
                LinkRateRow(
                    source_node_id=self.a_id,
                    destination_node_id=self.b_id,
                    bytes_per_second=bytes_per_second,
                    transfers=transfers,
                    updated_at=at or self.ctx.now(),
                )
            )
            session.commit()


@pytest.fixture
def stack_settings() -> dict[str, Any]:
    """Settings a test module wants for its stack (a module overrides this fixture)."""
    return {}


@pytest.fixture
def stack(
    cluster: SimCluster, database_url: str, tmp_path: Path, stack_settings: dict[str, Any]
) -> Iterator[Stack]:
    a, b = cluster["node-a"], cluster["node-b"]
    admins = fresh_admins(a, b)
    ctx, tasks, engine = build_context(database_url, tmp_path / "data", **stack_settings)
    a_id = register_sim_node(ctx, a)
    b_id = register_sim_node(ctx, b)
    yield Stack(ctx, tasks, a, b, *admins, a_id, b_id)
    ctx.clients.close()
    engine.dispose()
    for admin in admins:
        admin.clear_faults()
        admin.close()
