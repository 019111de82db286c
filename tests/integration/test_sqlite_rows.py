"""``sqlite_rows.insert``: the normalizer batch's multi-row inserts on the sqlite3 cursor
store what SQLAlchemy's own insert stores, and return the new ids in row order."""

import pytest
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.exc import IntegrityError

from ticket_service.store import sqlite_rows
from ticket_service.store.tables import customers, metadata, tickets


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite+pysqlite:///{tmp_path / 'rows.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _ticket(number: int, **values) -> dict:
    return {"tenant_id": 1, "number": number, "status": "new", "channel": "wechat", "account_id": 1,
            "customer_id": 1, "tags": [], "created_at": 5, "updated_at": 6, "auto": False, "cc": None, **values}


def test_json_and_boolean_values_are_stored_as_sqlalchemy_stores_them(engine):
    rows = [_ticket(1, cc=None, auto=True, tags=["vip"]), _ticket(2, cc=["a@example.cn"], tags=[])]
    with engine.begin() as conn:
        ids = sqlite_rows.insert(conn, tickets, rows, returning=True)
        conn.execute(insert(tickets), [_ticket(3, cc=None, auto=True, tags=["vip"])])
        stored = conn.execute(text("SELECT number, cc, auto, tags FROM tickets ORDER BY number")).all()
        read = conn.execute(select(tickets.c.id, tickets.c.cc, tickets.c.auto, tickets.c.tags)
                            .order_by(tickets.c.number)).all()
    assert [row[0] for row in ids] == [read[0].id, read[1].id]
    # Raw text: the driver path writes exactly SQLAlchemy's serialisation (None as JSON null).
    assert stored[0][1:] == stored[2][1:] == ("null", 1, '["vip"]')
    assert stored[1][1:] == ('["a@example.cn"]', 0, "[]")
    assert [(r.cc, r.auto, r.tags) for r in read] == [(None, True, ["vip"]), (["a@example.cn"], False, []),
                                                      (None, True, ["vip"])]


def test_more_rows_than_one_statement_takes_keep_their_order(engine):
    # customers has 3 columns here: past 32766 // 3 rows the insert runs as several statements.
    rows = [{"tenant_id": 1, "name": f"c{i}", "created_at": i} for i in range(12_000)]
    with engine.begin() as conn:
        ids = sorted(row[0] for row in sqlite_rows.insert(conn, customers, rows, returning=True))
        by_id = dict(conn.execute(select(customers.c.id, customers.c.name)).all())
    assert len(ids) == 12_000
    assert [by_id[i] for i in ids] == [f"c{i}" for i in range(12_000)]


def test_a_driver_error_comes_out_as_sqlalchemys(engine):
    with engine.begin() as conn:
        sqlite_rows.insert(conn, tickets, [_ticket(1)], returning=False)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        sqlite_rows.insert(conn, tickets, [_ticket(2), _ticket(1)], returning=False)  # uq tenant + number
    with engine.connect() as conn:
        assert conn.execute(select(tickets.c.number)).scalars().all() == [1]


def test_a_left_out_column_with_a_python_default_is_refused(engine):
    row = _ticket(1)
    del row["tags"]
    with pytest.raises(ValueError, match="tags"), engine.begin() as conn:
        sqlite_rows.insert(conn, tickets, [row], returning=False)
