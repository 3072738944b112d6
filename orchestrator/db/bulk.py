"""Many rows of one table written with one statement (PostgreSQL: ``unnest`` of one array per
column), or one prepared statement bound per row elsewhere."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import Enum
from functools import cache
from typing import Any

from sqlalchemy import JSON, String, Table, TextClause, bindparam, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update
from sqlalchemy.types import TypeDecorator


def update_rows(
    session: Session,
    table: Table,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    same: dict[str, Any] | None = None,
) -> None:
    """Set ``columns`` of the rows whose ``key`` is each row's first value (then the columns'
    values, in order), and the ``same`` columns to one value for all. On PostgreSQL the values
    are bound as they are, without the column types' bind processing: aware datetimes, no
    text that must be masked."""
    if not rows:
        return
    connection = session.connection()
    names = (key, *columns)
    fixed = {f"v_{name}": _plain(value) for name, value in (same or {}).items()}
    if connection.dialect.name == "postgresql":
        statement = _unnest_update(table, names, tuple(same or ()), connection.dialect)
        arrays = {f"c{i}": list(values) for i, values in enumerate(zip(*rows, strict=True))}
        connection.execute(statement, arrays | fixed)
        return
    connection.execute(
        _keyed_update(table, names, 1, tuple(same or ())),
        [{f"c{i}": v for i, v in enumerate(row)} | fixed for row in rows],
    )


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
    ``returning`` columns (in no order).
    Bound as ``update_rows`` binds (no bind processing on PostgreSQL)."""
    if not rows:
        return []
    connection = session.connection()
    names = (key, expect, *columns)
    fixed = {f"v_{name}": _plain(value) for name, value in values.items()}
    if connection.dialect.name == "postgresql":
        statement = _unnest_swap(table, names, tuple(values), returning, connection.dialect)
        arrays = {f"c{i}": list(v) for i, v in enumerate(zip(*rows, strict=True))}
        return [tuple(r) for r in connection.execute(statement, arrays | fixed)]
    # Elsewhere (SQLite, one writer at a time): the columns of the rows still as expected,
    # bound per row, then one compare-and-set of the fixed values per expected value.
    connection.execute(
        _keyed_update(table, names, 2), [{f"c{i}": v for i, v in enumerate(row)} for row in rows]
    )
    by_expected: dict[Any, list[Any]] = {}
    for row in rows:
        by_expected.setdefault(row[1], []).append(row[0])
    written: list[tuple[Any, ...]] = []
    for expected, keys in by_expected.items():
        swap = _keyed_swap(table, key, expect, tuple(values), returning)
        bound = {"keys": keys, "c1": expected} | fixed
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
    whose key exists has the other columns' values added to it. On PostgreSQL the column
    types' bind processing (masking, JSON) is done here, per column. Keys must be distinct."""
    if not rows:
        return
    connection = session.connection()
    same = same or {}
    names, shared = tuple(columns), tuple(same)
    if connection.dialect.name == "postgresql":
        dialect = connection.dialect
        statement = _unnest_insert(table, names, shared, tuple(adding), dialect)
        bound = {}
        for name, value in same.items():
            process = _processor(table, name, dialect)
            bound[f"v_{name}"] = process(value) if process else value
        for i, values in enumerate(zip(*rows, strict=True)):
            process = _processor(table, names[i], dialect)
            bound[f"c{i}"] = [process(v) for v in values] if process else list(values)
        connection.execute(statement, bound)
        return
    fixed = {f"v_{name}": value for name, value in same.items()}
    connection.execute(
        _plain_insert(table, names, shared, tuple(adding)),
        [{f"c{i}": v for i, v in enumerate(row)} | fixed for row in rows],
    )


def _arrays(table: Table, names: tuple[str, ...], dialect: Dialect) -> str:
    """One ``CAST(:cN AS type[])`` per column (JSON travels as text)."""
    casts = []
    for i, name in enumerate(names):
        kind = table.c[name].type
        if isinstance(kind, JSON):
            casts.append(f"CAST(CAST(:c{i} AS TEXT[]) AS {kind.compile(dialect)}[])")
        else:
            casts.append(f"CAST(:c{i} AS {kind.compile(dialect)}[])")
    return ", ".join(casts)


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
    return [f"{name} = CAST(:v_{name} AS {table.c[name].type.compile(dialect)})" for name in fixed]


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


def _cast(table: Table, name: str, param: str, dialect: Dialect) -> str:
    """``CAST(param AS the column's type)`` (JSON travels as text)."""
    kind = table.c[name].type
    if isinstance(kind, JSON):
        return f"CAST(CAST({param} AS TEXT) AS {kind.compile(dialect)})"
    return f"CAST({param} AS {kind.compile(dialect)})"


@cache
def _processor(table: Table, name: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    """What the column's type does to a value bound to it, for an array of them."""
    kind = table.c[name].type
    if isinstance(kind, JSON):
        return json.dumps
    if isinstance(kind, TypeDecorator):
        decorator = kind
        return lambda value: decorator.process_bind_param(value, dialect)
    return _plain if isinstance(kind, String) else None


def _plain(value: Any) -> Any:
    """A str enum as its value (psycopg would not know the array's element type otherwise)."""
    return value.value if isinstance(value, Enum) else value


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
        )
    )


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
        .values({name: bindparam(f"v_{name}", type_=table.c[name].type) for name in fixed})
        .returning(table.c[key], *(table.c[name] for name in returning))
    )
