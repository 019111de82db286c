"""``compiled.Statement.many``: one statement over many rows on the sqlite3 cursor writes what
SQLAlchemy's ``executemany`` writes, and its driver errors come out as SQLAlchemy's;
``Statement.tuples`` reads what ``all`` reads, as plain tuples."""

import pytest
from sqlalchemy import bindparam, create_engine, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from ticket_service.store.compiled import Statement
from ticket_service.store.tables import metadata, tickets

_SET = Statement(update(tickets).where(tickets.c.id == bindparam("v_id")).values(
    language=bindparam("v_language"), tags=bindparam("v_tags"), assignee_id=bindparam("v_agent")))


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite+pysqlite:///{tmp_path / 'many.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(tickets), [
            {"tenant_id": 1, "number": n, "status": "new", "channel": "email", "account_id": 1, "customer_id": 1,
             "tags": [], "created_at": 5, "updated_at": 6, "auto": False} for n in (1, 2, 3, 4)])
    yield engine
    engine.dispose()


def _rows(first: int) -> list[dict]:
    return [{"v_id": first, "v_language": "zh", "v_tags": ["vip"], "v_agent": 7},
            {"v_id": first + 1, "v_language": None, "v_tags": None, "v_agent": None}]


def test_rows_are_written_as_sqlalchemys_executemany_writes_them(engine):
    with engine.begin() as conn:
        _SET.many(conn, _rows(1))
        conn.execute(_SET.stmt, _rows(3))
        stored = conn.execute(text("SELECT number, language, tags, assignee_id FROM tickets ORDER BY number")).all()
    # Raw text: JSON as SQLAlchemy serialises it (None as JSON null), NULLs as NULL.
    assert stored[0][1:] == stored[2][1:] == ("zh", '["vip"]', 7)
    assert stored[1][1:] == stored[3][1:] == (None, "null", None)


def test_no_rows_run_nothing_and_a_driver_error_comes_out_as_sqlalchemys(engine):
    number = Statement(update(tickets).where(tickets.c.id == bindparam("v_id")).values(number=bindparam("v_number")))
    with engine.begin() as conn:
        number.many(conn, [])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        number.many(conn, [{"v_id": 1, "v_number": 9}, {"v_id": 2, "v_number": 9}])  # uq tenant + number
    with engine.connect() as conn:
        assert conn.execute(select(tickets.c.number).order_by(tickets.c.id)).scalars().all() == [1, 2, 3, 4]


def test_tuples_are_the_rows_all_reads_with_the_same_processed_values(engine):
    read = Statement(select(tickets.c.number, tickets.c.auto, tickets.c.tags).where(tickets.c.number <= bindparam("n"))
                     .order_by(tickets.c.number))
    with engine.connect() as conn:
        rows = read.tuples(conn, {"n": 2})
        assert rows == [tuple(row) for row in read.all(conn, {"n": 2})] == [(1, False, []), (2, False, [])]
        assert all(type(row) is tuple for row in rows)
        # JSON and Boolean columns come back processed, as SQLAlchemy's own rows have them.
        assert rows == [tuple(row) for row in conn.execute(read.stmt, {"n": 2})]
