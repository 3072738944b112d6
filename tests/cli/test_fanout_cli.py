"""The CLI's side of fan-out: `--to` given several times, and `jobs show` listing destinations."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.cli.jobs import print_job, where_to

PARENT: dict[str, Any] = {
    "id": "0f1e2d3c-0000-4000-8000-000000000000",
    "state": "failed",
    "source_node": "paris",
    "source_paths": ["masters/film.mxf"],
    "destination_node": "london",
    "destination_path": "/in",
    "bytes_transferred": 2_000_000,
    "bytes_expected": 3_000_000,
    "files_completed": 2,
    "files_expected": 3,
    "rate_kbps": None,
    "eta_seconds": None,
    "attempts": 0,
    "max_attempts": 3,
    "priority": 0,
    "created_at": "2026-01-01T00:00:00+00:00",
    "finished_at": "2026-01-01T00:01:00+00:00",
    "reason": "tokyo:/in failed (ascp error 19 (AUTH): authentication failure)",
    "destinations": [
        {
            "node": node,
            "path": "/in",
            "job_id": f"{i}a2b3c4d-0000-4000-8000-000000000000",
            "state": state,
            "bytes": 1_000_000 if state == "completed" else 0,
            "files": 1 if state == "completed" else 0,
            "error": "ascp error 19 (AUTH)" if state == "failed" else None,
        }
        for i, (node, state) in enumerate(
            [("london", "completed"), ("tokyo", "failed"), ("nyc", "completed")]
        )
    ],
}


def test_one_to_is_a_plain_job_and_several_are_a_fan_out() -> None:
    assert where_to([("b", "x")]) == {"destination_node": "b", "destination_path": "x"}
    assert where_to([("b", "x"), ("c", "y")]) == {
        "destinations": [{"node": "b", "path": "x"}, {"node": "c", "path": "y"}]
    }


def test_show_lists_every_destination_with_its_job_and_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_job(PARENT, wide=True)
    shown = capsys.readouterr().out
    assert "london:/in, tokyo:/in, nyc:/in" in shown
    rows = [line for line in shown.splitlines() if ":/in " in line and "a2b3c4d" in line]
    assert len(rows) == 3, shown
    assert "failed" in rows[1] and "ascp error 19" in rows[1]
    assert "1a2b3c4d-0000-4000-8000-000000000000" in rows[1]


def test_a_part_says_which_job_it_belongs_to(capsys: pytest.CaptureFixture[str]) -> None:
    part = {**PARENT, "destinations": [], "parent_id": PARENT["id"], "reason": None}
    print_job(part, wide=True)
    assert f"fan-out job {PARENT['id']}" in capsys.readouterr().out
