"""Statements compiled once and run on the sqlite3 driver directly, on the hot write paths.

``conn.execute`` costs about 15 µs a statement in SQLAlchemy (cache key, execution context,
result wrapping), the sqlite3 driver 1-2 µs for the same statement. The normalizer issues a
handful of statements per message and the router several per decision, all while holding
SQLite's one write lock, which every writer shares. So on pysqlite (``Database.run_read`` /
``run_write``) a ``Statement`` is compiled once (per set of inserted columns, for an INSERT)
and run on the DBAPI cursor with SQLAlchemy's own bind and result processors (JSON, say);
on any other driver ``conn.execute`` runs it. Rows are named tuples: attributes and
positions, as with SQLAlchemy's rows. Driver errors come out as SQLAlchemy's
(``IntegrityError``, ``OperationalError``), as from ``conn.execute``.

What SQLAlchemy fills in at execution (a Python-side column default, an expanding IN list)
cannot run this way: compiling such a statement raises ``ValueError``, so a caller that
leaves out a column with a Python default finds out on its first call, in the tests.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


class Statement:
    """One statement with bind parameters; ``column_keys`` fixes an INSERT's columns (else
    each distinct set of parameter names gets its own compiled form)."""

    __slots__ = ("stmt", "column_keys", "_plans")

    def __init__(self, stmt, column_keys: tuple[str, ...] | None = None) -> None:
        self.stmt, self.column_keys, self._plans = stmt, column_keys, {}

    def _compile(self, dialect, keys: tuple[str, ...] | None):
        compiled = self.stmt.compile(dialect=dialect, column_keys=keys)
        if (compiled.positiontup is None or compiled.post_compile_params or compiled.literal_execute_params
                or compiled.insert_prefetch or compiled.update_prefetch):
            raise ValueError(f"not runnable on the driver (give every column with a Python default): "
                             f"{compiled.string}")
        binds = []
        for name in compiled.positiontup:
            param = compiled.binds[name]
            binds.append((name, param.effective_value, param.type.dialect_impl(dialect).bind_processor(dialect)))
        columns = list(self.stmt.exported_columns) if hasattr(self.stmt, "exported_columns") else []
        row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else None
        processors = [(i, processor) for i, c in enumerate(columns)
                      if (processor := c.type.dialect_impl(dialect).result_processor(dialect, None)) is not None]
        return compiled.string, binds, row, processors

    def _plan(self, dialect, params: Mapping[str, Any]):
        keys = self.column_keys if self.column_keys is not None or not self.stmt.is_insert else tuple(params)
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plans[keys] = self._compile(dialect, keys)
        return plan

    @staticmethod
    def _args(binds: list, params: Mapping[str, Any]) -> list:
        args = []
        for name, value, processor in binds:
            value = params[name] if name in params else value
            args.append(processor(value) if processor is not None else value)
        return args

    def _run(self, conn: Connection, params: Mapping[str, Any], fetch):
        """Execute on the driver; returns ``fetch(cursor)`` and the plan it ran."""
        plan = self._plan(conn.dialect, params)
        sql, binds, _, _ = plan
        return self._cursor(conn, sql, self._args(binds, params), fetch, many=False), plan

    @staticmethod
    def _cursor(conn: Connection, sql: str, args: list, fetch, many: bool):
        dbapi = conn.dialect.loaded_dbapi
        try:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                if many:
                    cursor.executemany(sql, args)
                else:
                    cursor.execute(sql, args)
                return fetch(cursor)
            finally:
                cursor.close()
        except dbapi.Error as exc:
            raise DBAPIError.instance(sql, args, exc, dbapi.Error) from exc

    @staticmethod
    def _row(plan, values: tuple):
        _, _, row, processors = plan
        if processors:
            values = list(values)
            for i, processor in processors:
                values[i] = processor(values[i])
        return row._make(values)

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list:
        if conn.dialect.driver != "pysqlite":
            return conn.execute(self.stmt, params).all()
        rows, plan = self._run(conn, params, lambda cursor: cursor.fetchall())
        return [self._row(plan, values) for values in rows]

    def tuples(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """``all``'s rows as plain tuples, the statement's columns in order: for a caller that
        unpacks each row, without a named tuple made per row (a batch reads hundreds)."""
        if conn.dialect.driver != "pysqlite":
            return [tuple(row) for row in conn.execute(self.stmt, params)]
        rows, plan = self._run(conn, params, lambda cursor: cursor.fetchall())
        processors = plan[3]
        if not processors:
            return rows
        out = []
        for values in rows:
            values = list(values)
            for i, processor in processors:
                values[i] = processor(values[i])
            out.append(tuple(values))
        return out

    def first(self, conn: Connection, params: Mapping[str, Any]):
        if conn.dialect.driver != "pysqlite":
            return conn.execute(self.stmt, params).first()
        values, plan = self._run(conn, params, lambda cursor: cursor.fetchone())
        return None if values is None else self._row(plan, values)

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        row = self.first(conn, params)
        return None if row is None else row[0]

    def rowcount(self, conn: Connection, params: Mapping[str, Any]) -> int:
        if conn.dialect.driver != "pysqlite":
            return conn.execute(self.stmt, params).rowcount
        return self._run(conn, params, lambda cursor: cursor.rowcount)[0]

    def insert(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run an INSERT of one row; returns the new row's primary key."""
        if conn.dialect.driver != "pysqlite":
            return conn.execute(self.stmt, params).inserted_primary_key[0]
        return self._run(conn, params, lambda cursor: cursor.lastrowid)[0]

    def many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once for each row of parameters (each with the same names), as
        one ``executemany`` on the driver."""
        if not rows:
            return
        if conn.dialect.driver != "pysqlite":
            conn.execute(self.stmt, list(rows))
            return
        sql, binds, _, _ = self._plan(conn.dialect, rows[0])
        self._cursor(conn, sql, [self._args(binds, params) for params in rows], lambda cursor: None, many=True)
