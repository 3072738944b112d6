"""Every path a job sends to a node is confined under that node's root, the move target too."""

from __future__ import annotations

import uuid

from orchestrator.domain.states import JobState
from orchestrator.services.nodes.registry import update_node
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import settle


def test_move_after_transfer_stays_under_the_source_nodes_root(stack: Stack) -> None:
    """On a node shared by tenants, a tenant's job may not move files into another's tree."""
    update_node(stack.ctx, "node-a", {"root_path": "/tenant-a"})
    folder = f"m-{uuid.uuid4().hex[:8]}"
    write_tree(stack.root_a / "tenant-a", {f"{folder}/f.bin": b"x" * 100})
    job_id = stack.new_job(folder, options={"move_after_transfer": "/tenant-b/inbox"})
    states = settle(stack.ctx, stack.tasks, [stack.a_id])
    assert states[job_id] == JobState.COMPLETED
    (posted,) = [
        t["raw_spec"]
        for t in stack.admin_a.transfers()
        if (t["raw_spec"].get("tags") or {}).get("orchestrator", {}).get("job") == job_id
    ]
    assert posted["source_root"] == "/tenant-a"
    # Read relative to the tenant's root, like the source paths: never the docroot's /tenant-b.
    assert posted["move_after_transfer"] == "/tenant-a/tenant-b/inbox"
