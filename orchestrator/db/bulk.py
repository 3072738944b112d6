"""Many rows of one table updated by key with one statement (PostgreSQL: ``unnest`` of one
array per column), or one prepared statement bound per row elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import String, Table, TextClause, bindparam, text, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update

Processor = Callable[[Any], Any] | None


def update_rows(
    session: Session, table: Table, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Set ``columns`` of the rows whose ``key`` is each row's first value (then the columns'
    values, in order). Values are bound as the column types bind them (a naive time is UTC,
    masked text is masked) and a value too long for its column is refused, on every database."""
    if not rows:
        return
    connection = session.connection()
    names = (key, *columns)
    if connection.dialect.name == "postgresql":
        statement, processors = _unnest_update(table, names, connection.dialect)
        columns_of = zip(*rows, strict=True)
        arrays = {
            f"c{i}": list(values) if process is None else [process(v) for v in values]
            for i, (values, process) in enumerate(zip(columns_of, processors, strict=True))
        }
        connection.execute(statement, arrays)
        return
    connection.execute(
        _keyed_update(table, names), [{f"c{i}": v for i, v in enumerate(row)} for row in rows]
    )


@cache
def _unnest_update(
    table: Table, names: tuple[str, ...], dialect: Dialect
) -> tuple[TextClause, tuple[Processor, ...]]:
    """``UPDATE t SET c = u.c … FROM unnest(arrays) AS u(…) WHERE t.key = u.key``, built once,
    with each column's bind processor (a text statement binds its arrays as they are given)."""
    arrays = ", ".join(
        f"CAST(:c{i} AS {_element_type(table, name, dialect)}[])" for i, name in enumerate(names)
    )
    sets = ", ".join(f"{name} = u.{name}" for name in names[1:])
    processors = tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    # Only the table's own column names (table.c[name] refused any other) reach the text.
    statement = text(
        f"UPDATE {table.name} SET {sets} FROM unnest({arrays}) AS u({', '.join(names)}) "  # noqa: S608
        f"WHERE {table.name}.{names[0]} = u.{names[0]}"
    )
    return statement, processors


def _element_type(table: Table, name: str, dialect: Dialect) -> str:
    """The SQL type of a column's array: a string without its length, since a CAST to
    VARCHAR(n) cuts a longer value silently where the assignment to the column refuses it."""
    column_type = table.c[name].type
    if isinstance(column_type, String) and column_type.length is not None:
        return "TEXT"
    return str(column_type.compile(dialect))


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
