"""Fan-out: one job, several destinations, each its own transfer; the job sums them up."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hstssim.cluster import RunningNode, SimCluster
from orchestrator.db.tables import JobFileRow, JobRow
from orchestrator.domain.jobs import JobSpec
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.states import JobState
from orchestrator.services.context import utcnow
from orchestrator.services.conveyor.control import cancel_job, retry_job
from orchestrator.services.conveyor.deadlines import bytes_ahead
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.fanout import parts_of
from orchestrator.services.conveyor.intake import submit_message
from orchestrator.services.conveyor.jobs import create_job
from orchestrator.services.conveyor.retention import prune_history
from orchestrator.services.events import events_of
from orchestrator.services.schedules.runs import run_now
from orchestrator.services.schedules.store import (
    change_schedule,
    create_schedule,
    get_schedule,
    spec_of,
)
from orchestrator.services.views.jobs import JobFilter, attempts_of, find_jobs, show_job
from orchestrator.services.views.metrics import queries
from tests.services.conftest import Stack
from tests.support.sim import SimAdmin, fast_configs, fresh_admins, read_tree, write_tree
from tests.support.stack import register_sim_node, run_tasks, settle

NODES = ("node-a", "node-b", "node-c", "node-d")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """A source and three destinations."""
    with SimCluster.start(fast_configs(tmp_path_factory.mktemp("sim"), *NODES)) as started:
        yield started


@pytest.fixture
def more(stack: Stack, cluster: SimCluster) -> Iterator[dict[str, tuple[RunningNode, SimAdmin]]]:
    """node-c and node-d registered too, with fresh admin handles."""
    nodes = [cluster["node-c"], cluster["node-d"]]
    admins = fresh_admins(*nodes)
    for node in nodes:
        register_sim_node(stack.ctx, node)
    yield {n.name: (n, admin) for n, admin in zip(nodes, admins, strict=True)}
    for admin in admins:
        admin.clear_faults()
        admin.close()


def fresh(name: str) -> str:
    """A folder name of its own (the nodes, and their files, outlive a test)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def fanout(stack: Stack, folder: str, **spec: Any) -> str:
    data = {
        "source_node": "node-a",
        "source_paths": [folder],
        "destinations": [{"node": n, "path": f"in-{folder}"} for n in NODES[1:]],
        **spec,
    }
    return create_job(stack.ctx, JobSpec.model_validate(data)).job.id


def part_states(stack: Stack, parent_id: str) -> dict[str, str]:
    return {d.node: d.state for d in show_job(stack.ctx, parent_id).destinations}


def settle_parent(stack: Stack, parent_id: str, state: JobState) -> None:
    settle(stack.ctx, stack.tasks, [stack.a_id], until=lambda s: s[parent_id] == state)


def test_fanout_to_three_nodes_arrives_whole_at_each_with_one_transfer_each(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    folder = fresh("f3")
    files = {f"{folder}/a.bin": os.urandom(300_000), f"{folder}/sub/b.txt": b"hello"}
    write_tree(stack.root_a, files)
    parent_id = fanout(stack, folder)
    settle_parent(stack, parent_id, JobState.COMPLETED)

    roots: dict[str, Path] = {"node-b": stack.root_b}
    roots.update({name: node.config.docroot for name, (node, _) in more.items()})
    for root in roots.values():
        assert read_tree(root / f"in-{folder}") == files
    # One transfer per destination on the source, each with its own attempt tag.
    assert stack.admin_a.counters()["transfers_created"] == 3
    with stack.ctx.sessions() as session:
        parts = parts_of(session, parent_id)
        attempts = {a.id for p in parts for a in attempts_of(session, p.id)}
    transfers = [
        t["raw_spec"]
        for t in stack.admin_a.transfers()
        if t["raw_spec"]["tags"]["orchestrator"]["attempt"] in attempts
    ]
    assert len(transfers) == len(attempts) == 3
    assert len({t["fasp_port"] for t in transfers}) == 3  # one to each destination
    for admin in [stack.admin_b, *(admin for _, admin in more.values())]:
        seen = admin.counters()
        assert seen["requests"]["POST /files/upload_setup"] == 1
        assert seen["files_written"] == len(files)
    view = show_job(stack.ctx, parent_id)
    assert view.state == JobState.COMPLETED
    assert [d.node for d in view.destinations] == list(NODES[1:])
    assert {d.state for d in view.destinations} == {"completed"}
    assert view.bytes_transferred == 3 * sum(len(b) for b in files.values())
    assert view.files_completed == 6
    # The default list shows the parent, not its parts; a part links to its parent.
    listed = [j.id for j in find_jobs(stack.ctx, JobFilter()).items]
    assert listed == [parent_id]
    assert len(find_jobs(stack.ctx, JobFilter(parts=True)).items) == 4
    part = show_job(stack.ctx, view.destinations[0].job_id)
    assert part.parent_id == parent_id
    # /metrics counts the job submitted once, as the dashboard does, not again per destination.
    with stack.ctx.sessions() as session:
        assert queries.ended_jobs_by_state(session)["completed"] == 1
        assert sum(h.count for h in queries.job_durations(session).values()) == 1


def test_a_failing_destination_fails_the_job_and_a_retry_reruns_only_it(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    folder = fresh("f1")
    write_tree(stack.root_a, {f"{folder}/x.bin": os.urandom(50_000)})
    _, admin_c = more["node-c"]
    admin_c.fault(kind="reject_tokens", count=0)
    parent_id = fanout(stack, folder, max_attempts=1)
    settle_parent(stack, parent_id, JobState.FAILED)

    view = show_job(stack.ctx, parent_id)
    assert part_states(stack, parent_id) == {
        "node-b": "completed",
        "node-c": "failed",
        "node-d": "completed",
    }
    assert view.reason is not None
    assert view.reason.startswith(f"node-c:/in-{folder} failed (ascp error 19")
    assert [d.error is not None for d in view.destinations] == [False, True, False]

    admin_c.clear_faults()
    stack.admin_a.reset_counters()
    retry_job(stack.ctx, parent_id)
    settle_parent(stack, parent_id, JobState.COMPLETED)
    assert stack.admin_a.counters()["transfers_created"] == 1  # node-c's part alone
    with stack.ctx.sessions() as session:
        attempts = [p.attempt_count for p in parts_of(session, parent_id)]
    assert attempts == [1, 2, 1]  # node-b, node-c (tried again), node-d
    assert (more["node-c"][0].config.docroot / f"in-{folder}" / folder / "x.bin").exists()


def test_cancel_of_the_parent_cancels_its_open_parts(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    parent_id = fanout(stack, "fc")  # nothing dispatched yet: every part is queued
    assert cancel_job(stack.ctx, parent_id) is JobState.CANCELED
    run_tasks(stack.ctx, stack.tasks)
    assert set(part_states(stack, parent_id).values()) == {"canceled"}
    assert stack.admin_a.counters()["transfers_created"] == 0


def test_a_schedule_with_several_destinations_runs_fan_out_jobs(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    folder = fresh("sch")
    files = {f"{folder}/m.bin": os.urandom(10_000)}
    write_tree(stack.root_a, files)
    targets = [
        {"node": "node-c", "path": f"in-{folder}"},
        {"node": "node-d", "path": f"x-{folder}"},
    ]
    spec = ScheduleSpec.model_validate(
        {
            "id": folder,
            "interval_seconds": 3600,
            "source_node": "node-a",
            "source_paths": [folder],
            "destinations": targets,
        }
    )
    create_schedule(stack.ctx, spec)
    with stack.ctx.sessions() as session:
        assert spec_of(session, get_schedule(session, folder)) == spec  # read back as saved
    run = run_now(stack.ctx, folder).job.id
    settle_parent(stack, run, JobState.COMPLETED)
    assert [(d.node, d.state) for d in show_job(stack.ctx, run).destinations] == [
        ("node-c", "completed"),
        ("node-d", "completed"),
    ]
    assert read_tree(more["node-c"][0].config.docroot / f"in-{folder}") == files
    assert read_tree(more["node-d"][0].config.docroot / f"x-{folder}") == files

    # One destination again: the list goes.
    change_schedule(stack.ctx, folder, {"destination_node": "node-b", "destination_path": "y"})
    with stack.ctx.sessions() as session:
        changed = spec_of(session, get_schedule(session, folder))
    assert (changed.destinations, changed.destination_node) == (None, "node-b")


def test_retention_removes_parts_only_with_their_parent(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    stack.ctx.settings = stack.ctx.settings.model_copy(update={"history_days": 30.0})
    parent_id = fanout(stack, fresh("ret"))
    with stack.ctx.sessions() as session:
        first, *_ = parts_of(session, parent_id)
    cancel_job(stack.ctx, first.id)  # one part ended; the job goes on
    stack.ctx.clock = lambda: utcnow() + timedelta(days=31)
    assert prune_history(stack.ctx).jobs == 0

    cancel_job(stack.ctx, parent_id)
    stack.ctx.clock = lambda: utcnow() + timedelta(days=62)
    assert prune_history(stack.ctx).jobs == 4  # the parent and its three parts
    with stack.ctx.sessions() as session:
        assert parts_of(session, parent_id) == []


def test_the_queue_entry_takes_destinations_too(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    body = {
        "source_node": "node-a",
        "source_paths": ["q"],
        "destinations": [{"node": "node-b", "path": "q"}, {"node": "node-c", "path": "q"}],
    }
    said = submit_message(stack.ctx, body)
    assert said.endswith(" queued"), said
    parent_id = said.split()[1]
    assert list(part_states(stack, parent_id).values()) == ["queued", "queued"]
    refused = submit_message(stack.ctx, {**body, "destination_node": "node-b"})
    assert refused.startswith("rejected: destinations: "), refused


def test_destinations_whose_copies_differ_make_the_job_need_attention_naming_the_file(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    # The source file changes between two runs of one destination (node-c first refuses its
    # token, and runs again on retry): every node reports the checksum of what it really
    # moved, and the job says which file the destinations do not hold alike.
    folder = fresh("fx")
    write_tree(stack.root_a, {f"{folder}/same.bin": b"s" * 4000, f"{folder}/x.bin": b"1" * 5000})
    _, admin_c = more["node-c"]
    admin_c.fault(kind="reject_tokens", count=0)
    options = {"file_checksum": "sha256", "overwrite": "always"}
    parent_id = fanout(stack, folder, max_attempts=1, options=options)
    settle_parent(stack, parent_id, JobState.FAILED)

    admin_c.clear_faults()
    write_tree(stack.root_a, {f"{folder}/x.bin": b"2" * 5000})
    retry_job(stack.ctx, parent_id)
    settle_parent(stack, parent_id, JobState.NEEDS_ATTENTION)

    view = show_job(stack.ctx, parent_id)
    assert set(part_states(stack, parent_id).values()) == {"completed"}
    assert view.reason is not None
    assert view.reason.startswith("the destinations' copies differ: "), view.reason
    assert f"{folder}/x.bin: checksums differ across node-b:/in-{folder}" in view.reason
    assert "same.bin" not in view.reason  # one file alike everywhere is not named
    copy_c = more["node-c"][0].config.docroot / f"in-{folder}" / folder / "x.bin"
    assert copy_c.read_bytes() == b"2" * 5000
    assert (stack.root_b / f"in-{folder}" / folder / "x.bin").read_bytes() == b"1" * 5000
    # No part is open, none can be retried: a cancel closes the parent (as for any job that
    # needs attention), its reason kept, its parts as they are.
    assert cancel_job(stack.ctx, parent_id) == JobState.CANCELED
    closed = show_job(stack.ctx, parent_id)
    assert closed.reason == view.reason
    assert set(part_states(stack, parent_id).values()) == {"completed"}


def test_destinations_that_agree_complete_with_each_files_checksum_stored(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    folder = fresh("fs")
    body = os.urandom(20_000)
    write_tree(stack.root_a, {f"{folder}/m.bin": body})
    parent_id = fanout(stack, folder, options={"file_checksum": "sha256", "overwrite": "always"})
    settle_parent(stack, parent_id, JobState.COMPLETED)
    with stack.ctx.sessions() as session:
        parts = parts_of(session, parent_id)
        sums = {
            f.checksum
            for p in parts
            for f in session.scalars(select(JobFileRow).where(JobFileRow.job_id == p.id))
        }
    assert sums == {hashlib.sha256(body).hexdigest()}


def test_a_fanout_counts_once_in_the_bytes_ahead_of_a_link(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    # The parent is `running` with its parts' sums and its first destination's link: only the
    # part to node-b is work ahead on node-a → node-b, not the parent's total on top of it.
    folder = fresh("fb")
    write_tree(stack.root_a, {f"{folder}/big.bin": os.urandom(10_000)})
    deadline = (utcnow() + timedelta(days=1)).isoformat()
    parent_id = fanout(stack, f"{folder}/big.bin", deadline=deadline)
    dispatch(stack.ctx)  # the parts move: the parent sums their sizes up
    with stack.ctx.sessions() as session:
        assert session.get(JobRow, parent_id).bytes_expected == 30_000  # type: ignore[union-attr]
        assert bytes_ahead(session, stack.a_id, stack.b_id, 0) == 10_000


def test_a_fanouts_eta_and_risk_follow_its_open_parts(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    # node-a → node-b is measured slow: that part, and so the parent, is at risk. Once that
    # part is out of the way, the parent is as late as its other parts, not at risk.
    folder = fresh("fe")
    write_tree(stack.root_a, {f"{folder}/big.bin": os.urandom(100_000)})
    now = utcnow()
    stack.measured_link(100.0, at=now)
    deadline = now + timedelta(minutes=10)
    parent_id = fanout(stack, f"{folder}/big.bin", deadline=deadline.isoformat())
    view = show_job(stack.ctx, parent_id)
    assert view.at_risk and view.eta is not None and view.eta > deadline
    slow = next(d.job_id for d in view.destinations if d.node == "node-b")

    cancel_job(stack.ctx, slow)

    view = show_job(stack.ctx, parent_id)
    assert view.state == JobState.RUNNING
    assert not view.at_risk
    assert view.eta is None or view.eta <= deadline


def test_a_fanout_that_ends_after_its_deadline_records_it_missed(
    stack: Stack, more: dict[str, tuple[RunningNode, SimAdmin]]
) -> None:
    folder = fresh("fd")
    write_tree(stack.root_a, {f"{folder}/f.bin": os.urandom(2_000_000)})
    deadline = stack.ctx.now() + timedelta(seconds=1)
    parent_id = fanout(
        stack,
        folder,
        deadline=deadline.isoformat(),
        options={"target_rate_kbps": 8000},  # 1 MB/s: each destination takes about 2 s
    )
    settle_parent(stack, parent_id, JobState.COMPLETED)

    with stack.ctx.sessions() as session:
        said = [e.message for e in events_of(session, parent_id) if e.kind == "deadline"]
    assert said[-1].startswith("deadline missed by "), said
    assert show_job(stack.ctx, parent_id).deadline_missed
