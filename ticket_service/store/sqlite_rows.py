"""SQLite: many rows into one table with one ``INSERT … VALUES (…), (…) RETURNING id`` on the
sqlite3 cursor.

The normalizer writes a batch's new rows table by table (``inbound_sets``). Through
SQLAlchemy a multi-row insert is compiled for its row count on every call and each value
goes through the execution context and each returned row through the result machinery;
on SQLite all of it runs while the batch holds the one write lock. Here the statement
text is made once per table, column set and row count, the values go through the same
bind processors SQLAlchemy would apply (JSON as its text: ``None`` as ``null``, as
SQLAlchemy's ``JSON`` with ``none_as_null`` off), and driver errors come out as
SQLAlchemy's, as from ``conn.execute`` (``compiled.Statement`` does the same for single
statements).

A column with a Python-side default that a row leaves out cannot be filled in here:
``ValueError``, found on a caller's first call, in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy import insert as insert_stmt
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

# SQLITE_MAX_VARIABLE_NUMBER: 32766 since SQLite 3.32.0 ("Limits In SQLite"), 999 before.
_MAX_VARIABLES = 999


class _Plan:
    __slots__ = ("head", "row", "tail", "values", "processors", "per_statement")

    def __init__(self, conn: Connection, table: Table, columns: tuple[str, ...], returning: bool) -> None:
        missing = [c.key for c in table.columns if c.default is not None and c.key not in columns]
        if missing:
            raise ValueError(f"{table.name}: rows leave out {missing}, which have a Python default")
        dialect = conn.dialect
        quote = dialect.identifier_preparer.quote
        self.head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES "
        self.row = "(" + ", ".join("?" for _ in columns) + ")"
        # A row's values in column order with one call; the few that need it (JSON) processed after.
        self.values = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
        self.processors = [(i, processor) for i, c in enumerate(columns)
                           if (processor := table.c[c].type.dialect_impl(dialect).bind_processor(dialect))]
        limit = 32766 if dialect.loaded_dbapi.sqlite_version_info >= (3, 32, 0) else _MAX_VARIABLES
        self.per_statement = max(1, limit // max(1, len(columns)))
        self.tail = " RETURNING id" if returning else ""

    def sql(self, count: int) -> str:
        return self.head + ", ".join([self.row] * count) + self.tail


_PLANS: dict[tuple[str, tuple[str, ...], bool], _Plan] = {}


def insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], returning: bool) -> list[tuple]:
    """Insert rows (each with the same columns, named explicitly), in order; with
    ``returning`` the rows' ``(id,)`` tuples as SQLite returns them."""
    if conn.dialect.driver != "pysqlite":
        stmt = insert_stmt(table)
        if returning:
            return [tuple(row) for row in conn.execute(stmt.returning(table.c.id), list(rows))]
        conn.execute(stmt, list(rows))
        return []
    columns = tuple(rows[0])
    key = (table.name, columns, returning)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _Plan(conn, table, columns, returning)
    out: list[tuple] = []
    step = plan.per_statement
    for start in range(0, len(rows), step):
        out += _run(conn, plan, rows[start:start + step])
    return out


def _run(conn: Connection, plan: _Plan, rows: Sequence[dict[str, Any]]) -> list[tuple]:
    args: list[Any] = []
    values, processors = plan.values, plan.processors
    for row in rows:
        if processors:
            row_args = list(values(row))
            for i, processor in processors:
                row_args[i] = processor(row_args[i])
            args += row_args
        else:
            args += values(row)
    sql = plan.sql(len(rows))
    dbapi = conn.dialect.loaded_dbapi
    try:
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, args)
            return cursor.fetchall()
        finally:
            cursor.close()
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, args, exc, dbapi.Error) from exc
