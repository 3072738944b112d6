"""POST /api/v1/nodes/{name}/resume: an operator releases a held destination and paused links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from orchestrator.db.tables import BreakerRow
from tests.api.conftest import Api


def _seed(api: Api) -> None:
    stack, later = api.stack, datetime.now(UTC) + timedelta(hours=1)
    with stack.ctx.sessions() as session:
        session.add_all(
            [
                BreakerRow(
                    key=f"destination:{stack.b_id}",
                    scope="destination",
                    destination_node_id=stack.b_id,
                    state="open",
                    outcomes="",
                    reason="no space left on disk (25 NO_SPACE_LEFT)",
                    probe_at=later,
                    cool_down_seconds=3600,
                ),
                BreakerRow(
                    key=f"link:{stack.a_id}:{stack.b_id}",
                    scope="link",
                    source_node_id=stack.a_id,
                    destination_node_id=stack.b_id,
                    state="open",
                    outcomes="ffffff",
                    probe_at=later,
                    cool_down_seconds=3600,
                ),
            ]
        )
        session.commit()


def test_resume_releases_the_hold_and_closes_the_links(api: Api) -> None:
    _seed(api)

    refused = api.client.post("/api/v1/nodes/node-b/resume", headers=api.headers("read"))
    unknown = api.client.post("/api/v1/nodes/nowhere/resume", headers=api.headers())
    answer = api.client.post("/api/v1/nodes/node-b/resume", headers=api.headers())

    assert refused.status_code == 403
    assert unknown.status_code == 404
    assert answer.status_code == 200 and answer.json()["name"] == "node-b"
    with api.stack.ctx.sessions() as session:
        left = [(row.key, row.state) for row in session.scalars(select(BreakerRow))]
    assert left == [(f"link:{api.stack.a_id}:{api.stack.b_id}", "closed")]
