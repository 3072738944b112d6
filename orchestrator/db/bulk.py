"""Many rows of one table written with one statement (PostgreSQL: ``unnest`` of one array per
column), or one prepared statement bound per row elsewhere. Values are bound as the column types
bind them (a naive time is UTC, masked text is masked) and a value too long for its column is
refused, on every database."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import JSON, Float, String, Table, TextClause, bindparam, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update


class BinaryArray(list[Any]):
    """One column's values, sent by psycopg as a binary array (engine.py registers it):
    every element of one Python type, as ``_processor`` makes them."""


def update_rows(
    session: Session,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    same: dict[str, Any] | None = None,
) -> None:
    """Set ``columns`` of the rows whose ``key`` is each row's first value (then the columns'
    values, in order), and the ``same`` columns to one value for all."""
    if not rows:
        return
    connection = session.connection()
    names = (key, *columns)
    dialect = connection.dialect
    if dialect.name == "postgresql":
        statement = _unnest_update(table, names, tuple(same or ()), dialect)
        connection.execute(statement, _bound(table, names, rows, same, dialect))
        return
    connection.execute(_keyed_update(table, names, 1, tuple(same or ())), _per_row(rows, same))


def swap_rows(
    session: Session,
    table: Table,
    key: str,
    expect: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    values: dict[str, Any],
    returning: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """Compare-and-set: set ``columns`` (and ``values``, the same for every row) of each row
    whose ``key`` is the entry's first value and whose ``expect`` column still holds its
    second (then the columns' values, in order). Each row written: its key, then its
    ``returning`` columns (in no order)."""
    if not rows:
        return []
    connection = session.connection()
    names = (key, expect, *columns)
    dialect = connection.dialect
    if dialect.name == "postgresql":
        statement = _unnest_swap(table, names, tuple(values), returning, dialect)
        bound = _bound(table, names, rows, values, dialect)
        return [tuple(r) for r in connection.execute(statement, bound)]
    # Elsewhere (SQLite, one writer at a time): the columns of the rows still as expected,
    # bound per row, then one compare-and-set of the fixed values per expected value.
    connection.execute(_keyed_update(table, names, 2), _per_row(rows))
    by_expected: dict[Any, list[Any]] = {}
    for row in rows:
        by_expected.setdefault(row[1], []).append(row[0])
    written: list[tuple[Any, ...]] = []
    for expected, keys in by_expected.items():
        swap = _keyed_swap(table, key, expect, tuple(values), returning)
        bound = {"keys": keys, "c1": expected} | _fixed(values)
        written += [tuple(r) for r in connection.execute(swap, bound)]
    return written


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    same: dict[str, Any] | None = None,
    adding: Sequence[str] = (),
) -> None:
    """Insert one row per entry of ``rows`` (the values of ``columns``, in order), each with
    the ``same`` columns' one value. With ``adding`` (the first columns: a unique key), a row
    whose key exists has the other columns' values added to it. Keys must be distinct."""
    if not rows:
        return
    same = same or {}
    names, shared = tuple(columns), tuple(same)
    _refuse_divergent(table, (*names, *shared), adding)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        dialect = connection.dialect
        statement = _unnest_insert(table, names, shared, tuple(adding), dialect)
        connection.execute(statement, _bound(table, names, rows, same, dialect))
        return
    connection.execute(_plain_insert(table, names, shared, tuple(adding)), _per_row(rows, same))


def _per_row(
    rows: Sequence[Sequence[Any]], same: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The parameters of a statement bound once per row (``cN``, then ``v_name`` for all)."""
    fixed = _fixed(same)
    return [{f"c{i}": v for i, v in enumerate(row)} | fixed for row in rows]


def _fixed(same: dict[str, Any] | None) -> dict[str, Any]:
    """``v_name`` parameters of the columns set to one value for all rows."""
    return {f"v_{name}": value for name, value in (same or {}).items()}


def _refuse_divergent(table: Table, named: tuple[str, ...], adding: Sequence[str]) -> None:
    """Refuse what the two paths would write differently: a column left out that has a Python
    default (SQLite's Core INSERT fills it, the unnest statement does not), or a sum of a
    column that is not a number (SQLite concatenates text, PostgreSQL has no ``+`` for it)."""
    missing = [c.name for c in table.c if c.default is not None and c.name not in named]
    if missing:
        raise ValueError(f"insert_rows: give {', '.join(missing)} (a Python default)")
    summed = [n for n in named if adding and n not in adding]
    if any(table.c[n].type.python_type not in (int, float) for n in summed):
        raise ValueError(f"insert_rows: only numbers can be added to ({', '.join(summed)})")


def _arrays(table: Table, names: tuple[str, ...], dialect: Dialect) -> str:
    """One ``CAST(:cN AS type[])`` per column (JSON travels as text)."""
    return ", ".join(_cast(table, name, f":c{i}", dialect, "[]") for i, name in enumerate(names))


def _cast(table: Table, name: str, param: str, dialect: Dialect, array: str = "") -> str:
    """``CAST(param AS the column's type)``, or of its array (JSON travels as text)."""
    kind = table.c[name].type
    if isinstance(kind, JSON):
        return f"CAST(CAST({param} AS TEXT{array}) AS {kind.compile(dialect)}{array})"
    return f"CAST({param} AS {_element_type(table, name, dialect)}{array})"


@cache
def _unnest_update(
    table: Table, names: tuple[str, ...], fixed: tuple[str, ...], dialect: Dialect
) -> TextClause:
    """``UPDATE t SET c = u.c …, f = :f … FROM unnest(arrays) AS u(…) WHERE t.key = u.key``,
    built once."""
    sets = ", ".join([f"{name} = u.{name}" for name in names[1:]] + _scalars(table, fixed, dialect))
    # Only the table's own column names (table.c[name] refused any other) reach the text.
    return text(
        f"UPDATE {table.name} SET {sets} FROM unnest({_arrays(table, names, dialect)}) "  # noqa: S608
        f"AS u({', '.join(names)}) WHERE {table.name}.{names[0]} = u.{names[0]}"
    )


def _scalars(table: Table, fixed: tuple[str, ...], dialect: Dialect) -> list[str]:
    """``f = CAST(:v_f AS type)`` for each column set to one value."""
    return [f"{name} = {_cast(table, name, f':v_{name}', dialect)}" for name in fixed]


@cache
def _unnest_swap(
    table: Table,
    names: tuple[str, ...],
    fixed: tuple[str, ...],
    returning: tuple[str, ...],
    dialect: Dialect,
) -> TextClause:
    """``UPDATE t SET c = u.c, f = :f … FROM unnest(arrays) AS u(…) WHERE t.key = u.key AND
    t.expect = u.expect RETURNING t.key, …``, built once."""
    key, expect = names[0], names[1]
    sets = _scalars(table, fixed, dialect) + [f"{name} = u.{name}" for name in names[2:]]
    labels = ", ".join(("k_" + key, "e_" + expect, *names[2:]))
    returned = ", ".join(f"{table.name}.{table.c[name].name}" for name in (key, *returning))
    # Only the table's own column names (table.c[name] refused any other) reach the text.
    return text(
        f"UPDATE {table.name} SET {', '.join(sets)} "  # noqa: S608
        f"FROM unnest({_arrays(table, names, dialect)}) AS u({labels}) "
        f"WHERE {table.name}.{key} = u.k_{key} AND {table.name}.{expect} = u.e_{expect} "
        f"RETURNING {returned}"
    )


@cache
def _unnest_insert(
    table: Table,
    names: tuple[str, ...],
    shared: tuple[str, ...],
    adding: tuple[str, ...],
    dialect: Dialect,
) -> TextClause:
    """``INSERT INTO t (…) SELECT u.*, :v_f … FROM unnest(arrays) AS u [ON CONFLICT … DO
    UPDATE SET c = t.c + excluded.c …]``, built once."""
    conflict = ""
    if adding:
        sums = ", ".join(
            f"{name} = {table.name}.{name} + excluded.{name}"
            for name in (*names, *shared)
            if name not in adding
        )
        conflict = f" ON CONFLICT ({', '.join(adding)}) DO UPDATE SET {sums}"
    scalars = "".join(f", {_cast(table, name, f':v_{name}', dialect)}" for name in shared)
    # Only the table's own column names (table.c[name] refused any other) reach the text.
    return text(
        f"INSERT INTO {table.name} ({', '.join((*names, *shared))}) "  # noqa: S608
        f"SELECT u.*{scalars} FROM unnest({_arrays(table, names, dialect)}) "
        f"AS u({', '.join(names)}){conflict}"
    )


@cache
def _processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    """What the column's type does to a value bound to it (a naive time is UTC, masked text
    is masked; JSON is serialised to travel as text), for an array of them."""
    kind = table.c[name].type
    if isinstance(kind, JSON):
        return json.dumps
    process = kind.dialect_impl(dialect).bind_processor(dialect)
    if process is None and isinstance(kind, String):
        return _plain
    if process is None and isinstance(kind, Float):
        return _float
    return process


def _plain(value: Any) -> Any:
    """A str enum as its value, anything else as text (a binary array has one element type)."""
    if value is None or type(value) is str:
        return value
    return str(value.value if isinstance(value, Enum) else value)


def _float(value: Any) -> Any:
    """A number as a float (a binary array has one element type: no ints among floats)."""
    return None if value is None else float(value)


def _bound(
    table: Table,
    names: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    same: dict[str, Any] | None,
    dialect: Dialect,
) -> dict[str, Any]:
    """The parameters of an unnest statement: one array per column (``cN``) and one value
    per column of one value for all (``v_name``), each as its column type binds it."""
    bound: dict[str, Any] = {}
    for name, value in (same or {}).items():
        process = _processor(table, name, dialect)
        bound[f"v_{name}"] = process(value) if process else value
    for i, values in enumerate(zip(*rows, strict=True)):
        process = _processor(table, names[i], dialect)
        bound[f"c{i}"] = BinaryArray(map(process, values) if process else values)
    return bound


def _element_type(table: Table, name: str, dialect: Dialect) -> str:
    """The SQL type of a column's values in a CAST: a string without its length, since a CAST
    to VARCHAR(n) cuts a longer value silently where the assignment to the column refuses it."""
    column_type = table.c[name].type
    if isinstance(column_type, String) and column_type.length is not None:
        return "TEXT"
    return str(column_type.compile(dialect))


@cache
def _keyed_update(
    table: Table, names: tuple[str, ...], compared: int = 1, fixed: tuple[str, ...] = ()
) -> Update:
    """``UPDATE t SET c = :c …, f = :v_f … WHERE key = :key``, built once; with ``compared``
    2 the second name is compared too (``AND expect = :expect``), not set."""
    return (
        update(table)
        .where(
            *[
                table.c[names[i]] == bindparam(f"c{i}", type_=table.c[names[i]].type)
                for i in range(compared)
            ]
        )
        .values(
            {
                name: bindparam(f"c{i}", type_=table.c[name].type)
                for i, name in enumerate(names)
                if i >= compared
            }
            | {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in fixed}
            | _unstamped(table, (*names[compared:], *fixed))
        )
    )


def _unstamped(table: Table, written: tuple[str, ...]) -> dict[str, Any]:
    """Each other column with a Python ``onupdate`` set to itself: a Core UPDATE would stamp
    it (the wall clock) where the unnest statements of PostgreSQL leave it alone."""
    return {c.name: c for c in table.c if c.onupdate is not None and c.name not in written}


@cache
def _plain_insert(
    table: Table, names: tuple[str, ...], shared: tuple[str, ...], adding: tuple[str, ...]
) -> Any:
    """``INSERT INTO t (…) VALUES (:c0, …, :v_f …) [ON CONFLICT … DO UPDATE]`` (SQLite's),
    built once."""
    rows = sqlite_insert(table).values(
        {name: bindparam(f"c{i}", type_=table.c[name].type) for i, name in enumerate(names)}
        | {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in shared}
    )
    if not adding:
        return rows
    return rows.on_conflict_do_update(
        index_elements=list(adding),
        set_={
            name: table.c[name] + rows.excluded[name]
            for name in (*names, *shared)
            if name not in adding
        },
    )


@cache
def _keyed_swap(
    table: Table, key: str, expect: str, fixed: tuple[str, ...], returning: tuple[str, ...]
) -> Update:
    """``UPDATE t SET f = :f … WHERE key IN :keys AND expect = :c1 RETURNING key, …``."""
    return (
        update(table)
        .where(
            table.c[key].in_(bindparam("keys", expanding=True)),
            table.c[expect] == bindparam("c1", type_=table.c[expect].type),
        )
        .values(
            {name: bindparam(f"v_{name}", type_=table.c[name].type) for name in fixed}
            | _unstamped(table, fixed)
        )
        .returning(table.c[key], *(table.c[name] for name in returning))
    )
