"""The benchmarks' side-by-side runs: options passed on to the other revision, turns taken in
order, medians reported."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

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
    assert order == ["theirs", "ours"] * 3
    assert mine == {"ms": 2.0, "n": 1.0}
    assert other == {"ms": 5.0, "n": 2.0}
    alone, none = revisions().alternate(1, lambda: {"ms": 7.0}, None)
    assert (alone, none) == ({"ms": 7.0}, None)
