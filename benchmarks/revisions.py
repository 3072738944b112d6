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
