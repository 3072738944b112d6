"""Scheduled replication with real processes: beat applies the file and ticks; ticks race."""

from __future__ import annotations

import multiprocessing
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, update

from orchestrator.crypto import secret_box
from orchestrator.db.engine import make_engine, make_session_factory
from orchestrator.db.tables import JobRow, ScheduleRow
from orchestrator.domain.nodes import NodeRegistration
from orchestrator.domain.schedules import ScheduleSpec
from orchestrator.domain.states import JobState
from orchestrator.services.context import ServiceContext, no_enqueue
from orchestrator.services.nodes.clients import NodeClients
from orchestrator.services.nodes.registry import register_node
from orchestrator.services.schedules.store import create_schedule
from orchestrator.settings import Settings
from tests.support.sim import read_tree, write_tree
from tests.support.stack import fresh_database
from tests.workers.conftest import Rig

REPLICATIONS = """
schedules:
  - id: e2e-mirror
    interval_seconds: 2
    source_node: node-a
    source_paths: [rep]
    destination_node: node-b
    destination_path: mirror
"""


def runs(rig: Rig) -> list[JobRow]:
    with rig.ctx.sessions() as session:
        query = select(JobRow).where(JobRow.schedule_id == "e2e-mirror")
        return list(session.scalars(query.order_by(JobRow.slot_time)))


@pytest.mark.slow
@pytest.mark.rig(
    settings={"replication_tick_seconds": 0.5, "replications_file": "{tmp}/replications.yaml"},
    files={"replications.yaml": REPLICATIONS},
)
def test_beat_applies_the_file_and_its_ticks_keep_the_mirror_current(rig: Rig) -> None:
    files = rig.tree("rep", [30_000, 20_000, 10_000])
    rig.worker()
    rig.wait(lambda: any(r.state == JobState.COMPLETED for r in runs(rig)), "a first run")
    mirror = rig.b.config.docroot / "mirror"
    assert read_tree(mirror) == files

    write_tree(rig.a.config.docroot, {"rep/sub/f1.bin": b"changed" * 100})
    seen = len(runs(rig))

    def moved_the_change() -> bool:
        later = [r for r in runs(rig)[seen:] if r.state == JobState.COMPLETED]
        return any(r.files_completed == 1 and r.bytes_transferred == 700 for r in later)

    rig.wait(moved_the_change, "a run that moves only the changed file")
    assert read_tree(mirror)["rep/sub/f1.bin"] == b"changed" * 100
    assert rig.admin_a.counters()["transfers_created"] == len(
        [a for a in rig.attempts() if a.remote_id]
    )


# -- two processes tick at the same moments ------------------------------------------------

SCHEDULES = 8
SLOTS = 12
START = datetime(2026, 11, 23, tzinfo=UTC)


def _ticker(url: str, data_dir: str, role: int, barrier: Any, results: Any) -> None:
    """Tick at every slot moment together with the other process (spawned)."""
    from orchestrator.services.schedules.runs import tick

    try:
        settings = Settings(database_url=url, data_dir=Path(data_dir))
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        box = secret_box(None, settings.data_dir)
        ctx = ServiceContext(sessions, NodeClients(sessions, box, settings), settings, no_enqueue)
        started = 0
        for slot in range(1, SLOTS + 1):
            moment = START + timedelta(minutes=slot, seconds=1)
            ctx.clock = lambda moment=moment: moment
            barrier.wait(timeout=60)
            started += len(tick(ctx).started)
            barrier.wait(timeout=60)
            if role == 0:  # every run ends before the next slot
                with sessions() as session:
                    session.execute(
                        update(JobRow)
                        .where(JobRow.state == JobState.QUEUED)
                        .values(state=JobState.CANCELED)
                    )
                    session.commit()
            barrier.wait(timeout=60)
        results.put((role, started, ""))
        engine.dispose()
    except Exception:
        barrier.abort()
        results.put((role, -1, traceback.format_exc()))


def test_two_processes_ticking_together_create_each_slot_once(db_url: str, tmp_path: Path) -> None:
    engine = fresh_database(db_url)
    sessions = make_session_factory(engine)
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    box = secret_box(None, tmp_path)
    ctx = ServiceContext(sessions, NodeClients(sessions, box, settings), settings, no_enqueue)
    ctx.clock = lambda: START
    for name in ("node-a", "node-b"):
        registration = {
            "name": name,
            "base_url": "https://127.0.0.1:1",
            "auth_kind": "node_user",
            "username": "u",
            "secret": SecretStr("never-called"),
        }
        register_node(ctx, NodeRegistration.model_validate(registration))
    for n in range(SCHEDULES):
        spec = ScheduleSpec(
            id=f"race-{n}",
            cron="* * * * *",
            source_node="node-a",
            source_paths=["out"],
            destination_node="node-b",
            destination_path="in",
        )
        create_schedule(ctx, spec)
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    results = spawn.Queue()
    tickers = [
        spawn.Process(target=_ticker, args=(db_url, str(tmp_path), role, barrier, results))
        for role in (0, 1)
    ]
    for process in tickers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in tickers]
    for process in tickers:
        process.join(timeout=30)
    errors = [error for _, _, error in outcomes if error]
    assert not errors, "\n".join(errors)
    assert sum(started for _, started, _ in outcomes) == SCHEDULES * SLOTS
    with sessions() as session:
        jobs = session.scalar(select(func.count()).select_from(JobRow))
        slots = session.execute(select(JobRow.schedule_id, JobRow.slot_time).distinct()).all()
        skipped = session.scalar(select(func.sum(ScheduleRow.skipped_slots)))
    assert jobs == len(slots) == SCHEDULES * SLOTS
    assert skipped == 0, "a racing tick counted a slot as skipped"
    engine.dispose()
