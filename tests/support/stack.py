"""Test helpers that assemble the orchestrator's services around a database and sim nodes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from hstssim.cluster import RunningNode
from orchestrator.crypto import secret_box
from orchestrator.db.base import Base
from orchestrator.db.engine import make_engine, make_session_factory
from orchestrator.db.migrate import upgrade
from orchestrator.db.tables import AttemptRow, JobRow
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.domain.states import JobState
from orchestrator.services.context import ServiceContext
from orchestrator.services.conveyor.checksums import collect_files
from orchestrator.services.conveyor.dispatch import dispatch
from orchestrator.services.conveyor.polling import poll_node
from orchestrator.services.conveyor.reconcile import sweep
from orchestrator.services.conveyor.submission import submit
from orchestrator.services.events import events_of
from orchestrator.services.nodes.clients import NodeClients
from orchestrator.services.nodes.registry import register_node
from orchestrator.settings import Settings
from orchestrator.taskqueue import TaskName

SETTLED = {JobState.COMPLETED, JobState.FAILED, JobState.CANCELED, JobState.NEEDS_ATTENTION}
FAST = {
    "retry_backoff_seconds": 0.2,
    "retry_backoff_max_seconds": 1.0,
    "submit_lease_seconds": 4.0,
    "post_settle_seconds": 3.5,
    "unseen_check_seconds": 30.0,
    "progress_seconds": 0.2,
    "lost_after_seconds": 1.0,
    "poll_lease_seconds": 5.0,
    "queued_sweep_seconds": 0.5,
    "node_connect_timeout": 1.0,
    "node_read_timeout": 2.0,
    # A poll that frees slots wakes dispatch at once (tests of the gathering set it).
    "dispatch_gather_seconds": 0.0,
}


def fresh_database(url: str) -> Engine:
    """A migrated database with every table emptied."""
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))
    return engine


@dataclass
class RecordingEnqueue:
    """An enqueue that keeps the tasks so a test can run them one by one; one sent with a
    countdown is taken once its countdown has passed, as the broker would deliver it."""

    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    delayed: list[tuple[str, float]] = field(default_factory=list)  # (task, countdown), all
    later: list[tuple[float, str, tuple[Any, ...]]] = field(default_factory=list)

    def __call__(self, task: str, *args: Any, **options: Any) -> None:
        if "countdown" in options:
            self.delayed.append((task, float(options["countdown"])))
            self.later.append((time.monotonic() + float(options["countdown"]), task, args))
        else:
            self.sent.append((task, args))

    def take(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Everything sent since the last take, and what a countdown held until now."""
        now = time.monotonic()
        due = [(task, args) for at, task, args in self.later if at <= now]
        self.later = [entry for entry in self.later if entry[0] > now]
        taken, self.sent = [*self.sent, *due], []
        return taken


def register_sim_node(ctx: ServiceContext, node: RunningNode, **overrides: Any) -> int:
    """Register a simulated node with its node user; returns its id."""
    data: dict[str, Any] = {
        "name": node.name,
        "base_url": node.api_url,
        "auth_kind": "node_user",
        "username": node.config.node_user,
        "secret": SecretStr(node.config.node_password),
        "transfer_host": node.host,
    }
    data.update(overrides)
    return register_node(ctx, NodeRegistration.model_validate(data))


def build_context(
    url: str, data_dir: Path, **settings: Any
) -> tuple[ServiceContext, RecordingEnqueue, Engine]:
    """A ServiceContext over a fresh database, with a recording enqueue."""
    engine = fresh_database(url)
    config = Settings(data_dir=data_dir, database_url=url, **{**FAST, **settings})
    sessions: sessionmaker[Session] = make_session_factory(engine)
    box = secret_box(None, data_dir)
    recorder = RecordingEnqueue()
    ctx = ServiceContext(
        sessions=sessions,
        clients=NodeClients(sessions, box, config),
        settings=config,
        enqueue=recorder,
    )
    return ctx, recorder, engine


def run_tasks(ctx: ServiceContext, recorder: RecordingEnqueue) -> int:
    """Run every recorded task in order (and what they enqueue); returns how many ran."""
    ran = 0
    while batch := recorder.take():
        for task, args in batch:
            if task == TaskName.DISPATCH:
                dispatch(ctx)
            elif task == TaskName.SUBMIT:
                submit(ctx, *args)
            elif task == TaskName.COLLECT_FILES:
                collect_files(ctx, *args)
            ran += 1
    return ran


def job_states(ctx: ServiceContext) -> dict[str, str]:
    """Every job's state by id."""
    with ctx.sessions() as session:
        rows = session.execute(select(JobRow.id, JobRow.state)).all()
        return {str(row[0]): str(row[1]) for row in rows}


def settle(
    ctx: ServiceContext,
    recorder: RecordingEnqueue,
    node_ids: list[int],
    *,
    timeout: float = 30.0,
    until: Callable[[dict[str, str]], bool] | None = None,
) -> dict[str, str]:
    """Run tasks, polls and sweeps (as beat would) until every job ends, or ``until`` holds."""
    done = until or (lambda states: all(s in SETTLED for s in states.values()))
    deadline = time.monotonic() + timeout
    while True:
        run_tasks(ctx, recorder)
        for node_id in node_ids:
            poll_node(ctx, node_id, owner="test-poller")
        sweep(ctx)
        run_tasks(ctx, recorder)
        states = job_states(ctx)
        if done(states):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs did not settle: {states}")
        time.sleep(0.1)


def assert_story_of_a_clean_run(
    session: Session, job_id: str, *, poll_may_lead: bool = False
) -> None:
    """The job's state events read queued → admitted → submitting → submitted → … completed.

    ``poll_may_lead``: a poll running beside the submit (real workers) may read the transfer
    between its POST and the submit's record, match it by its tag and move the job on from
    SUBMITTING; the record then finds it moved on (docs/development.md: "A group's remote ids
    are recorded after its last POST").
    """
    story = [(e.from_state, e.to_state) for e in events_of(session, job_id) if e.kind == "state"]
    assert story[:3] == [
        (None, "queued"),
        ("queued", "admitted"),
        ("admitted", "submitting"),
    ], story
    # A poll may see the transfer running first, or only once it completed.
    recorded = [
        [("submitting", "submitted"), ("submitted", "running"), ("running", "completed")],
        [("submitting", "submitted"), ("submitted", "completed")],
    ]
    led_by_a_poll = [
        [("submitting", "running"), ("running", "completed")],
        [("submitting", "completed")],
    ]
    assert story[3:] in recorded + (led_by_a_poll if poll_may_lead else []), story
    # Led by a poll or not, the record says when the transfer was posted.
    posted = session.execute(
        select(AttemptRow.post_started_at, AttemptRow.submitted_at).where(
            AttemptRow.job_id == job_id
        )
    ).all()
    assert posted and all(start and at and start <= at for start, at in posted), posted
