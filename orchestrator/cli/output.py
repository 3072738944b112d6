"""How list and show commands print: tables that fit the line (a long path, URL or note is cut
with an ellipsis, never folded mid-word), everything with ``--wide``, or ``-o json``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from orchestrator.cli.console import out

MIN_CUT = 8  # a cut column keeps at least this many characters
GAP = 2  # spaces between two columns


class Output(StrEnum):
    """What a list or show command prints."""

    table = "table"
    json = "json"


OutputOpt = Annotated[
    Output,
    typer.Option("--output", "-o", help="table, or json: the API's answer as is, for scripts."),
]
WideOpt = Annotated[
    bool, typer.Option("--wide", "-w", help="Every column in full (lines may be long).")
]


@dataclass(frozen=True)
class Column:
    """A table column; ``cut``: it gives way (ellipsis) when the line is too long; ``prose``:
    it wraps between words instead (a word too long for it is cut)."""

    header: str
    cut: bool = False
    prose: bool = False
    wide_only: bool = False


def print_json(data: Any) -> None:
    """The data as indented JSON on stdout, nothing else (no colour, no wrapping)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_plain))


def print_rows(
    columns: Sequence[Column],
    rows: Iterable[Sequence[str | Text]],
    *,
    wide: bool,
    title: str | None = None,
) -> None:
    """Rows that fit the width: cut and prose columns shrink (widest first) until they do."""
    shown = [i for i, c in enumerate(columns) if wide or not c.wide_only]
    cells = [[_text(row[i]) for i in shown] for row in rows]
    heads = [columns[i] for i in shown]
    natural = [
        max([len(c.header), *(cell.cell_len for cell in (r[n] for r in cells))])
        for n, c in enumerate(heads)
    ]
    widths = natural if wide else _fit(natural, [c.cut or c.prose for c in heads], out.width)
    table = Table(
        box=None,
        pad_edge=False,
        padding=(0, GAP // 2),
        header_style="bold",
        title=title,
        title_justify="left",
    )
    for column, width in zip(heads, widths, strict=True):
        table.add_column(
            column.header, no_wrap=not column.prose, overflow="ellipsis", max_width=width
        )
    for row in cells:
        table.add_row(*row)
    print_table(table, wide=wide)


def print_fields(rows: Sequence[tuple[str, str | Text]], *, wide: bool) -> None:
    """``key  value`` lines: prose wraps between words, a long path or URL is cut."""
    grid = Table.grid(padding=(0, GAP))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="ellipsis")
    for key, value in rows:
        grid.add_row(key, _text(value))
    print_table(grid, wide=wide)


def print_table(table: Table, *, wide: bool = False) -> None:
    """A table on stdout, within the width (a terminal's, $COLUMNS, else 80) unless ``wide``."""
    if not wide:
        out.print(table)
        return
    needed = Measurement.get(out, out.options.update_width(1_000_000), table).maximum
    roomy = Console(
        width=max(needed, out.width),
        highlight=False,
        soft_wrap=True,
        force_terminal=out.is_terminal,
        color_system=out.color_system,  # type: ignore[arg-type]
    )
    roomy.print(table)


def _plain(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _text(value: str | Text) -> Text:
    return value if isinstance(value, Text) else Text(value)


def _fit(natural: list[int], cut: list[bool], width: int) -> list[int]:
    widths = list(natural)
    room = width - GAP * (len(widths) - 1)
    while sum(widths) > room:
        shrinkable = [i for i, c in enumerate(cut) if c and widths[i] > MIN_CUT]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths
