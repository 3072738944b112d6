"""Run a benchmark script on another revision of the project, for side-by-side figures."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def worktree(root: Path, revision: str) -> Iterator[Path]:
    """A temporary git worktree of ``revision``, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def run_at(root: Path, revision: str, script: str, argv: list[str]) -> Any:
    """``script`` (this tree's copy) with ``--root TREE`` and ``argv`` over a temporary
    worktree of ``revision`` on PYTHONPATH; the JSON of its last line of output."""
    with worktree(root, revision) as tree:
        return run_here(script, ["--root", str(tree), *argv], python_path=tree)


def run_here(script: str, argv: list[str], python_path: Path | None = None) -> Any:
    """``script`` with ``argv`` in a process of its own (so that each turn of a side starts
    as fresh as the other's); the JSON of its last line of output."""
    env = {**os.environ, "PYTHONPATH": str(python_path)} if python_path else None
    answer = subprocess.run(
        [sys.executable, str(Path(script).resolve()), *argv],
        check=True,
        capture_output=True,
        env=env,
        text=True,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


@contextmanager
def simulator(
    work: Path, nodes: int, tree: Path
) -> Iterator[tuple[subprocess.Popen[bytes], list[dict[str, Any]]]]:
    """hstssim of ``tree`` with ``nodes`` nodes in its own process; their JSON descriptions."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "hstssim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hstssim", "--nodes", str(nodes), "--json", "--root", str(work)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tree,  # python -m puts the working directory first on sys.path
            env={**os.environ, "PYTHONPATH": str(tree)},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            found = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
            if len(found) == nodes:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"hstssim did not start; see {log}")
            time.sleep(0.1)
        yield proc, found
    finally:
        proc.terminate()
        proc.wait(10)


def without(argv: list[str], *options: str) -> list[str]:
    """``argv`` less each of ``options`` with its value (``--opt V`` or ``--opt=V``)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{option}=" for option in options)):
            kept.append(arg)
    return kept


Figures = dict[str, float]


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--compare-with`` and ``--rounds``, and the hidden options of one side's own run."""
    parser.add_argument("--compare-with", metavar="REV", help="a git revision to measure too")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each side this many times, turn about, and print each figure's median",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)


def measure_sides(
    args: argparse.Namespace, root: Path, script: str, measure: Callable[[], Figures]
) -> tuple[Figures, Figures | None]:
    """This tree's figures (``measure`` here, or ``script`` in a process of its own when
    there are turns to take) and, with ``--compare-with``, the other revision's."""
    shared = without(sys.argv[1:], "--compare-with", "--rounds")

    def theirs() -> Figures:
        return dict(run_at(root, args.compare_with, script, ["--json", *shared]))

    def mine() -> Figures:
        if args.json or not (args.compare_with or args.rounds > 1):
            return measure()
        return dict(run_here(script, ["--json", *shared]))  # as fresh as theirs

    return alternate(args.rounds, mine, theirs if args.compare_with else None)


def alternate(
    rounds: int, ours: Callable[[], Figures], other: Callable[[], Figures] | None
) -> tuple[Figures, Figures | None]:
    """``rounds`` turns of both sides, the other revision first in the 1st, 3rd, 5th… and
    this tree first in the 2nd, 4th… (a busy machine's drift falls on both sides, and so does
    whatever favours the first run of a pair: always second, a tree measured itself 0.95x;
    with an odd count the other revision goes first once more), and each figure's median."""
    runs: list[Figures] = []
    others: list[Figures] = []
    for turn in range(max(1, rounds)):
        if other is not None and turn % 2 == 0:
            others.append(other())
        runs.append(ours())
        if other is not None and turn % 2 == 1:
            others.append(other())
    return _medians(runs), _medians(others) if others else None


def _medians(runs: list[Figures]) -> Figures:
    """Each figure's median over the runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def print_side_by_side(
    figures: tuple[tuple[str, str, str], ...],
    ours: dict[str, float],
    other: dict[str, float] | None,
    revision: str | None,
) -> None:
    """One table: each figure (key, label, format) for this tree, and for the other revision
    with the ratio when there is one."""
    width = max(len(label) for _, label, _ in figures)
    head = f"{'':{width}}  {'this tree':>12}"
    if other is not None:
        head += f"  {revision or 'other':>12}  {'ratio':>7}"
    print(head)
    for key, label, form in figures:
        line = f"{label:{width}}  {form.format(ours[key]):>12}"
        if other is not None:
            ratio = ours[key] / other[key] if other[key] else float("nan")
            line += f"  {form.format(other[key]):>12}  {ratio:>7.2f}"
        print(line)
