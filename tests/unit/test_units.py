"""The one wording of sizes, rates, file counts and times that every screen shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from orchestrator.api import render
from orchestrator.cli.console import human_bytes, human_rate, when
from orchestrator.domain import units


def test_sizes_are_decimal_and_rates_are_bits_per_second_on_every_screen() -> None:
    assert [units.size(n) for n in (999, 1_500, 600_000, 12_345_678)] == [
        "999 B", "1.50 KB", "600 KB", "12.3 MB"
    ]  # fmt: skip
    assert [units.bitrate(k) for k in (800, 12_500, 1_200_000)] == [
        "800 kbps", "12.5 Mbps", "1.20 Gbps"
    ]  # fmt: skip
    assert units.bitrate(0) == units.bitrate(None) == "—"
    # The dashboard has bytes per second, the CLI the API's kbps: one wording.
    assert render.rate(1_562_500) == human_rate(12_500) == "12.5 Mbps"
    assert render.size(1_500_000) == human_bytes(1_500_000) == "1.50 MB"


def test_a_transfer_that_moved_nothing_says_up_to_date() -> None:
    assert units.moved(0, 0, 6) == "up to date (6 files already there)"
    assert units.moved(0, 0, 1) == "up to date (1 file already there)"
    assert units.moved(3, 1_500_000, 2) == "3 files, 1.50 MB moved, 2 already there"
    assert units.moved(0, 0, 0) == "nothing to move"


def test_times_are_utc_and_say_so_in_the_dashboard_and_the_cli() -> None:
    paris = datetime(2026, 11, 23, 12, 22, 13, tzinfo=timezone(timedelta(hours=1)))
    assert render.utc(paris) == when(paris.isoformat()) == "2026-11-23 11:22:13 UTC"
    assert units.moment(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01 00:00:00 UTC"
