"""Many rows of one table updated by key with one statement (PostgreSQL: ``unnest`` of one
array per column), or one prepared statement bound per row elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Table, TextClause, bindparam, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update


def update_rows(
    session: Session, table: Table, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Set ``columns`` of the rows whose ``key`` is each row's first value (then the columns'
    values, in order). On PostgreSQL the values are bound as they are, without the column
    types' bind processing: aware datetimes, no text that must be masked."""
    if not rows:
        return
    connection = session.connection()
    names = (key, *columns)
    if connection.dialect.name == "postgresql":
        statement = _unnest_update(table, names, connection.dialect)
        connection.execute(
            statement, {f"c{i}": list(values) for i, values in enumerate(zip(*rows, strict=True))}
        )
        return
    connection.execute(
        _keyed_update(table, names), [{f"c{i}": v for i, v in enumerate(row)} for row in rows]
    )


@cache
def _unnest_update(table: Table, names: tuple[str, ...], dialect: Dialect) -> TextClause:
    """``UPDATE t SET c = u.c … FROM unnest(arrays) AS u(…) WHERE t.key = u.key``, built once."""
    arrays = ", ".join(
        f"CAST(:c{i} AS {table.c[name].type.compile(dialect)}[])" for i, name in enumerate(names)
    )
    sets = ", ".join(f"{name} = u.{name}" for name in names[1:])
    # Only the table's own column names (table.c[name] refused any other) reach the text.
    return text(
        f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS u({', '.join(names)}) "  # noqa: S608
        f"WHERE {table.name}.{names[0]} = u.{names[0]}"
    )


@cache
def _keyed_update(table: Table, names: tuple[str, ...]) -> Update:
    """``UPDATE t SET c = :c … WHERE key = :key``, built once."""
    return (
        update(table)
        .where(table.c[names[0]] == bindparam("c0", type_=table.c[names[0]].type))
        .values(
            {
                name: bindparam(f"c{i}", type_=table.c[name].type)
                for i, name in enumerate(names)
                if i
            }
        )
    )
