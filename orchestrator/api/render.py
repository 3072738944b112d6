"""HTML for the dashboard: the Jinja environment (autoescaped), number formats and the charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from orchestrator.domain import units
from orchestrator.domain.ascp import explain
from orchestrator.domain.states import FAILED_ENDS, POSTED, JobState
from orchestrator.services.views.job_progress import JobProgress
from orchestrator.services.views.throughput import Minute


def size(count: float | None) -> str:
    """Bytes as people read them, in decimal units: 1_500_000 -> '1.50 MB'."""
    return units.size(count)


def rate(per_second: float | None) -> str:
    """Bytes per second, shown in bits per second: '12.5 Mbps'; a dash when nothing moves."""
    return units.bitrate(units.kbps_of(per_second))


def clock(seconds: float | None) -> str:
    """A duration as m:ss, or h:mm:ss from an hour: an ETA."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def relative(moment: datetime | None, now: datetime) -> str:
    """'12 s ago', 'in 4 min', '3 h ago', or a dash."""
    if moment is None:
        return "—"
    delta = (moment - now).total_seconds()
    span = abs(delta)
    if span < 1:
        return "now"
    if span < 90:
        text = f"{span:.0f} s"
    elif span < 90 * 60:
        text = f"{span / 60:.0f} min"
    elif span < 36 * 3600:
        text = f"{span / 3600:.0f} h"
    else:
        text = f"{span / 86400:.0f} d"
    return f"in {text}" if delta > 0 else f"{text} ago"


def utc(moment: datetime | None) -> str:
    """A timestamp for a tooltip: '2026-11-23 11:22:13 UTC'."""
    return units.moment(moment)


@dataclass(frozen=True)
class Bar:
    """One minute of the chart."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    """A bar chart's geometry (an inline SVG drawn by the template's ``chart_svg``)."""

    width: int
    height: int
    bars: list[Bar]
    peak: str
    start: str
    middle: str
    end: str


CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 1000, 110, 3.0


def chart(minutes: list[Minute], bar_minutes: int = 1, end: str = "now (UTC)") -> Chart:
    """Bars of bytes per minute (or per ``bar_minutes``), scaled to the busiest bar."""
    slot = CHART_WIDTH / max(1, len(minutes))
    peak = max((m.bytes for m in minutes), default=0)
    per = "a minute" if bar_minutes == 1 else f"{bar_minutes} minutes"
    bars = []
    for i, minute in enumerate(minutes):
        if minute.bytes <= 0:
            continue
        height = max(2.0, CHART_HEIGHT * minute.bytes / peak)
        when = f"{minute.minute:%H:%M}"
        if bar_minutes > 1:
            when += f" to {minute.minute + timedelta(minutes=bar_minutes):%H:%M}"
        bars.append(
            Bar(
                x=round(i * slot + BAR_GAP / 2, 1),
                y=round(CHART_HEIGHT - height, 1),
                width=round(max(1.0, slot - BAR_GAP), 1),
                height=round(height, 1),
                title=f"{when} UTC: {size(minute.bytes)} in {minute.files} file(s), "
                f"{rate(minute.bytes / (60 * bar_minutes))} on average",
            )
        )
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        bars=bars,
        peak=f"peak {size(peak)} in {per}" if peak else "",
        start=f"{minutes[0].minute:%H:%M}" if minutes else "",
        middle=f"{minutes[len(minutes) // 2].minute:%H:%M}" if minutes else "",
        end=end,
    )


def job_chart(progress: JobProgress) -> Chart:
    """A job's bytes over time, up to now or to its end."""
    end = f"ended {progress.ended_at:%H:%M} UTC" if progress.ended_at else "now (UTC)"
    return chart(progress.bars, progress.bar_minutes, end)


@cache
def environment() -> Environment:
    """The templates of orchestrator/api/templates, every value HTML-escaped."""
    env = Environment(
        loader=PackageLoader("orchestrator.api", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(size=size, rate=rate, clock=clock, relative=relative, utc=utc)
    env.globals.update(
        chart=chart,
        job_chart=job_chart,
        explain=explain,
        S=JobState,
        FAILED_ENDS=FAILED_ENDS,
        POSTED=POSTED,
    )
    return env


def page(name: str, **values: Any) -> str:
    """Render one template."""
    return environment().get_template(name).render(**values)
