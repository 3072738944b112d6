"""The benchmarks' side-by-side runs: options passed on to the other revision, turns taken in
order, medians reported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def revisions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("revisions", ROOT / "benchmarks/revisions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_other_revision_gets_the_options_less_the_comparison_and_the_rounds() -> None:
    argv = ["--nodes", "5", "--compare-with", "HEAD~1", "--rounds=3", "--database-url", "x"]
    assert revisions().without(argv, "--compare-with", "--rounds") == [
        "--nodes",
        "5",
        "--database-url",
        "x",
    ]


def test_turns_alternate_and_each_figure_is_the_median_of_its_side() -> None:
    order: list[str] = []
    ours_runs = iter([{"ms": 3.0, "n": 1.0}, {"ms": 1.0, "n": 1.0}, {"ms": 2.0, "n": 1.0}])
    theirs_runs = iter([{"ms": 9.0, "n": 2.0}, {"ms": 5.0, "n": 2.0}, {"ms": 4.0, "n": 2.0}])

    def ours() -> dict[str, float]:
        order.append("ours")
        return next(ours_runs)

    def theirs() -> dict[str, float]:
        order.append("theirs")
        return next(theirs_runs)

    mine, other = revisions().alternate(3, ours, theirs)
    assert order == ["theirs", "ours", "ours", "theirs", "theirs", "ours"]  # neither always 2nd
    assert mine == {"ms": 2.0, "n": 1.0}
    assert other == {"ms": 5.0, "n": 2.0}
    alone, none = revisions().alternate(1, lambda: {"ms": 7.0}, None)
    assert (alone, none) == ({"ms": 7.0}, None)


def pipeline(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # its sibling modules
    spec = importlib.util.spec_from_file_location("pipeline", ROOT / "benchmarks/pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "pipeline", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


def test_a_slot_hold_is_split_into_its_steps_from_the_events_the_attempt_and_the_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime, timedelta

    from orchestrator.db.tables import AttemptRow, JobRow

    bench = pipeline(monkeypatch)
    t0 = datetime(2026, 11, 29, 12, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    done = JobRow(id="a", finished_at=at(1.0))
    unfinished = JobRow(id="b", finished_at=None)
    attempts = {
        "a": AttemptRow(job_id="a", post_started_at=at(0.3), ended_at=at(0.5)),
        "b": AttemptRow(job_id="b", post_started_at=at(0.3), ended_at=None),
    }
    events = [  # a job admitted twice (a retry): its first admission starts its slot
        ("a", "admitted", at(0.1)),
        ("a", "admitted", at(0.0)),
        ("a", "submitting", at(0.2)),
        ("b", "admitted", at(0.0)),
    ]

    steps = bench.slot_steps([done, unfinished], attempts, events)

    assert steps["held"] == [1.0]
    assert [steps[name] for name in bench.SLOT_STEPS] == [[0.2], [pytest.approx(0.1)], [0.2]]
    columns = bench.by_mode({"adaptive|jobs completed": 3.0, "fixed|jobs completed": 2.0}, " @ X")
    assert columns == [
        ("adaptive @ X", {"jobs completed": 3.0}),
        ("fixed @ X", {"jobs completed": 2.0}),
    ]
