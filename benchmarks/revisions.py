"""Run a benchmark script on another revision of the project, for side-by-side figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def run_at(root: Path, revision: str, script: str, argv: list[str]) -> Any:
    """``script`` (this tree's copy) with ``--root TREE`` and ``argv`` over a temporary
    worktree of ``revision`` on PYTHONPATH; the JSON of its last line of output."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            answer = subprocess.run(
                [sys.executable, str(Path(script).resolve()), "--root", str(tree), *argv],
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(tree)},
                text=True,
            )
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
    return json.loads(answer.stdout.strip().splitlines()[-1])


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
