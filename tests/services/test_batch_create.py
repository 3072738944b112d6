"""Jobs created in batches (create_jobs, the queue's create_jobs message): one transaction,
one wake-up, an outcome per job; on SQLite and PostgreSQL with real hstssim nodes."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select

from orchestrator.db.tables import JobEventRow, JobLabelRow, JobRow
from orchestrator.domain.jobs import MAX_BATCH, JobSpec
from orchestrator.domain.states import JobState
from orchestrator.services.conveyor.intake import submit_messages
from orchestrator.services.conveyor.jobs import (
    Created,
    JobRequest,
    KeyOwner,
    KeyReused,
    Refused,
    create_jobs,
)
from orchestrator.services.events import events_of
from orchestrator.taskqueue import TaskName
from tests.services.conftest import Stack
from tests.support.sim import write_tree
from tests.support.stack import job_states, run_tasks, settle


def body(folder: str, **fields: Any) -> dict[str, Any]:
    return {
        "source_node": "node-a",
        "source_paths": [folder],
        "destination_node": "node-b",
        "destination_path": f"in-{folder}",
        **fields,
    }


def request(folder: str, key: str | None = None, **fields: Any) -> JobRequest:
    return JobRequest(JobSpec.model_validate(body(folder, **fields)), idempotency_key=key)


def test_a_mixed_batch_creates_the_good_jobs_in_order_and_refuses_each_bad_one(
    stack: Stack,
) -> None:
    fanout = body(
        "f", destinations=[{"node": "node-b", "path": "x"}, {"node": "node-b", "path": "y"}]
    )
    del fanout["destination_node"], fanout["destination_path"]
    requests = [
        request("one", "k-1", labels={"team": "media"}),
        request("two", destination_node="nowhere"),
        JobRequest(JobSpec.model_validate(fanout), idempotency_key="k-fan"),
        request("three", destination_node="node-a"),
        request("one", "k-1", labels={"team": "media"}),  # the first one's key again
        request("four"),
    ]
    outcomes = create_jobs(stack.ctx, requests, key_owner=KeyOwner(7))

    first, unknown, fan, same_node, again, last = outcomes
    assert isinstance(first, Created) and first.created
    assert isinstance(unknown, Refused) and unknown.field == "destination_node"
    assert "nowhere" in str(unknown.error)
    assert isinstance(fan, Created) and fan.created and fan.job.state == JobState.RUNNING
    assert isinstance(same_node, Refused)
    assert str(same_node.error) == "destination_node: source and destination must be two nodes"
    assert isinstance(again, Created) and not again.created and again.job.id == first.job.id
    assert isinstance(last, Created) and last.created
    assert [t for t, _ in stack.tasks.take()] == [TaskName.DISPATCH], "one wake-up for all"

    with stack.ctx.sessions() as session:
        rows = session.scalars(select(JobRow).order_by(JobRow.created_at)).all()
        # in the order given: the first, the fan-out's parent and its two parts, the last
        ids = [r.id for r in rows]
        assert (ids[0], ids[1], ids[-1]) == (first.job.id, fan.job.id, last.job.id)
        assert [r.destination_path for r in rows] == ["/in-one", "/x", "/x", "/y", "/in-four"]
        parts = [r for r in rows if r.parent_id == fan.job.id]
        assert [p.state for p in parts] == [JobState.QUEUED, JobState.QUEUED]
        stored = session.get_one(JobRow, first.job.id)
        assert stored.idempotency_key == "k-1" and stored.created_by_token == 7
        assert stored.labels == {"team": "media"} and stored.options == {}
        assert stored.bytes_transferred == 0 and stored.attempt_count == 0
        assert not stored.at_risk and not stored.is_parent
        labels = session.execute(select(JobLabelRow.job_id, JobLabelRow.key)).all()
        assert [tuple(r) for r in labels] == [(first.job.id, "team")]
        said = [e.message for e in events_of(session, first.job.id)]
        assert said == ["queued: 1 path(s) from node-a to node-b:/in-one"]
        part_said = [e.message for e in events_of(session, parts[0].id)]
        assert part_said == [f"queued: destination of fan-out job {fan.job.id[:8]}"]

    write_tree(stack.root_a, {"one/a.txt": b"1", "four/b.txt": b"4", "f/c.txt": b"c"})
    states = settle(stack.ctx, stack.tasks, [stack.a_id, stack.b_id])
    assert set(states.values()) == {JobState.COMPLETED}


def test_a_batch_sent_again_makes_nothing_new_and_a_key_reused_otherwise_is_refused(
    stack: Stack,
) -> None:
    batch = [request(f"d{i}", f"key-{i}") for i in range(3)]
    made = create_jobs(stack.ctx, batch, key_owner=KeyOwner(1))
    stack.tasks.take()

    again = create_jobs(stack.ctx, batch, key_owner=KeyOwner(1))
    assert [o.job.id for o in again if isinstance(o, Created)] == [
        o.job.id for o in made if isinstance(o, Created)
    ]
    assert not any(isinstance(o, Created) and o.created for o in again)
    assert stack.tasks.take() == [], "nothing new: no wake-up"

    other = create_jobs(
        stack.ctx,
        [request("d0", "key-0", priority=9), request("d1", "key-1"), request("d9", "key-9")],
        key_owner=KeyOwner(1),
    )
    changed, same, new = other
    assert isinstance(changed, Refused) and isinstance(changed.error, KeyReused)
    assert "different parameters" in str(changed.error)
    assert isinstance(same, Created) and not same.created
    assert isinstance(new, Created) and new.created
    stolen = create_jobs(stack.ctx, [request("d2", "key-2")], key_owner=KeyOwner(2))
    assert isinstance(stolen[0], Refused) and "another sender" in str(stolen[0].error)
    assert len(job_states(stack.ctx)) == 4


def test_a_batch_takes_a_handful_of_statements_whatever_its_size(stack: Stack) -> None:
    engine = stack.ctx.sessions.kw["bind"]
    counted: list[str] = []

    def count(*args: Any) -> None:
        counted.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        outcomes = create_jobs(
            stack.ctx, [request(f"s{i}", f"s-{i}", labels={"n": str(i)}) for i in range(50)]
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all(isinstance(o, Created) and o.created for o in outcomes)
    # the keys, the nodes, then one INSERT each of jobs, labels and events
    assert len(counted) <= 5, counted
    with stack.ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(JobEventRow)) == 50
        assert session.scalar(select(func.count()).select_from(JobLabelRow)) == 50


def test_deadlines_in_a_batch_count_the_jobs_before_them_and_ask_the_source_once(
    stack: Stack,
) -> None:
    write_tree(stack.root_a, {"big.bin": os.urandom(1_000_000)})
    stack.measured_link(10_000.0)  # the link measured at 10 KB/s: 100 s per job
    before = stack.admin_a.counters()["requests"].get("POST /files/info", 0)
    now = stack.ctx.now()
    soon = now + timedelta(seconds=150)  # one job fits; two (the first ahead) do not

    outcomes = create_jobs(
        stack.ctx,
        [
            request("big.bin", deadline=soon, deadline_policy="reject"),
            request("big.bin", deadline=soon, deadline_policy="reject"),
            request("big.bin", deadline=now - timedelta(seconds=1)),
            request("big.bin", deadline=now + timedelta(hours=1)),
        ],
    )

    fits, late, past, later = outcomes
    assert isinstance(fits, Created) and fits.created and fits.warnings == ()
    assert isinstance(late, Refused) and late.field == "deadline"
    assert "2.00 MB ahead" in str(late.error) and "'reject'" in str(late.error)
    assert isinstance(past, Refused) and "is not in the future" in str(past.error)
    assert isinstance(later, Created) and later.created
    with stack.ctx.sessions() as session:
        row = session.get_one(JobRow, later.job.id)
        assert row.bytes_expected == 1_000_000 and row.deadline == now + timedelta(hours=1)
        assert row.eta is not None and not row.at_risk
    asked = stack.admin_a.counters()["requests"]["POST /files/info"] - before
    assert asked == 1, "one /files/info for the batch's deadline jobs"


def test_a_queue_message_of_many_bodies_says_what_became_of_each(stack: Stack) -> None:
    said = submit_messages(
        stack.ctx,
        [
            {**body("q1"), "idempotency_key": "q-1"},
            {**body("q2"), "options": {"cipher": "rot13"}},
            "not an object",
            {**body("q3"), "source_node": "nope"},
            {**body("q4"), "idempotency_key": "schedule:x"},
            {**body("q1"), "idempotency_key": "q-1"},
        ],
    ).splitlines()

    assert said[0].startswith("0: job ") and said[0].endswith(" queued")
    assert said[1].startswith("1: rejected: options.cipher")
    assert said[2].startswith("2: rejected: ")
    assert said[3].startswith("3: rejected: source_node: ")
    assert said[4] == (
        "4: rejected: Idempotency-Key: keys starting with 'schedule:' or 'run:' are reserved"
    )
    assert said[5] == f"5: {said[0][3:].removesuffix(' queued')} already known"
    assert len(job_states(stack.ctx)) == 1
    assert submit_messages(stack.ctx, []) == (
        f"rejected: bodies: a list of 1 to {MAX_BATCH} job bodies"
    )
    too_many = [body(f"m{i}") for i in range(MAX_BATCH + 1)]
    assert submit_messages(stack.ctx, too_many).startswith("rejected: bodies:")
    assert len(job_states(stack.ctx)) == 1
    assert run_tasks(stack.ctx, stack.tasks) >= 1


def test_a_value_the_database_cannot_store_refuses_its_job_alone(stack: Stack) -> None:
    # 1024 characters pass validation; under the node's root they no longer fit the column
    # (PostgreSQL refuses the INSERT; SQLite stores it)
    long = request("bad", destination_path="d" * 1024)
    ok, bad, other = create_jobs(stack.ctx, [request("ok"), long, request("other")])
    assert isinstance(ok, Created) and ok.created
    assert isinstance(other, Created) and other.created
    if stack.ctx.settings.database_url.startswith("postgresql"):
        assert isinstance(bad, Refused) and bad.field == "body"
        assert "cannot be stored" in str(bad.error)
        assert len(job_states(stack.ctx)) == 2
    else:
        assert isinstance(bad, Created)
