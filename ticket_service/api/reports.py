"""``GET /api/v1/reports/queue`` and ``/reports/kpis``: what a supervisor's dashboard shows.

KPIs cover whole days in the tenant's time zone (``from``/``to`` inclusive, ISO dates;
the last 30 days when left out) and come as JSON or, with ``format=csv``, as a CSV file
(UTF-8 with a byte-order mark, so spreadsheet programs read Chinese names right).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from sqlalchemy import select

from core.ids import now_ms
from core.json_http import json_response
from ticket_service.api.auth import authenticated
from ticket_service.api.errors import invalid_parameter
from ticket_service.api.spec import TIME, obj, operation
from ticket_service.api.tickets import DB, PREFIX, iso_ms
from ticket_service.store import reports
from ticket_service.store.reports import kpi_csv
from ticket_service.store.tables import tenants

_KPI_PARAMS = frozenset({"by", "from", "to", "format"})
_CSV_COLUMNS = reports.KPI_COLUMNS
_NUM = {"type": ["number", "null"]}
_INT = {"type": "integer"}
_LOAD = obj(("load", "capacity"), load=_INT, capacity=_INT)
_QUEUE = obj(("waiting", "oldest_waiting_s", "queues", "agents"),
             waiting=_INT, oldest_waiting_s=_NUM,
             queues={"type": "array", "items": obj(("vip_tier", "channel", "waiting", "oldest_queued_at"),
                                                   vip_tier=_INT, channel={"type": "string"}, waiting=_INT,
                                                   oldest_queued_at=TIME)},
             agents={"type": "array", "items": obj(("id", "name", "email", "status", "status_at", "load"),
                                                   id=_INT, name={"type": "string"}, email={"type": "string"},
                                                   status={"type": "string"}, status_at=TIME,
                                                   load=obj(("email", "chat", "voice"), email=_LOAD, chat=_LOAD,
                                                            voice=_LOAD))})
_ROW = obj(_CSV_COLUMNS, key={"type": "string"}, volume=_INT, replied=_INT, solved=_INT,
           **{c: _NUM for c in _CSV_COLUMNS[4:]})
_KPIS = obj(("by", "from", "to", "timezone", "rows"), by={"enum": list(reports.GROUPS)},
            timezone={"type": "string"}, rows={"type": "array", "items": _ROW},
            **{"from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"}})
_DATE = {"type": "string", "format": "date"}
PATHS = {
    "/reports/queue": {"get": operation(
        "The queue per VIP tier and channel, its oldest waiting ticket, and every agent's status and load",
        {200: ("The queue now", _QUEUE)})},
    "/reports/kpis": {"get": {**operation(
        "Volume, first-reply and resolution times (p50/p90, seconds) per day, channel or agent of the tickets "
        "created in a period of whole days in the tenant's time zone; format=csv answers text/csv",
        {200: ("KPI rows (or a CSV file with the same columns)", _KPIS)}, 400,
        params=[{"name": "by", "in": "query", "schema": {"enum": list(reports.GROUPS)}},
                {"name": "from", "in": "query", "schema": _DATE}, {"name": "to", "in": "query", "schema": _DATE},
                {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}])}},
}


def tenant_zone(conn, tenant_id: int) -> str:
    """The tenant's ``timezone`` setting if it names a zone, else UTC."""
    settings = conn.execute(select(tenants.c.settings).where(tenants.c.id == tenant_id)).scalar_one_or_none() or {}
    name = settings.get("timezone") or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def _day(raw: str | None, name: str, default: date) -> date:
    if raw is None:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid_parameter(name, "must be a date such as 2026-11-30") from None


def period(query, zone: str) -> tuple[int, int, date, date]:
    """[since, until) in ms for the inclusive days ``from``..``to`` in ``zone``."""
    tz = ZoneInfo(zone)
    today = datetime.now(tz).date()
    last = _day(query.get("to"), "to", today)
    first = _day(query.get("from"), "from", last - timedelta(days=29))
    if first > last:
        raise invalid_parameter("from", "must not be after to")
    if (last - first).days >= reports.MAX_DAYS:
        raise invalid_parameter("from", f"a report covers at most {reports.MAX_DAYS} days")
    since = datetime.combine(first, time(), tz).timestamp() * 1000
    until = datetime.combine(last + timedelta(days=1), time(), tz).timestamp() * 1000
    return int(since), int(until), first, last


@authenticated
async def queue_report(request: web.Request, tenant_id: int) -> web.Response:
    """The queue per VIP tier and channel with its oldest waiting ticket, and every agent's load."""
    def read(conn):
        return reports.queue_depth(conn, tenant_id), reports.agent_loads(conn, tenant_id)

    depth, loads = await request.app[DB].run_read(read)
    now = now_ms()
    oldest = min((d["oldest_queued_at"] for d in depth), default=None)
    body = {
        "waiting": sum(d["waiting"] for d in depth),
        "oldest_waiting_s": None if oldest is None else round((now - oldest) / 1000, 1),
        "queues": [{**d, "oldest_queued_at": iso_ms(d["oldest_queued_at"])} for d in depth],
        "agents": [{**a, "status_at": iso_ms(a["status_at"])} for a in loads],
    }
    return json_response(body)


@authenticated
async def kpi_report(request: web.Request, tenant_id: int) -> web.Response:
    """KPIs per day, channel or agent over a period; ``format=csv`` for a spreadsheet."""
    query = request.query
    unknown = sorted(set(query) - _KPI_PARAMS)
    if unknown:
        raise invalid_parameter(unknown[0], "is not a known parameter")
    by = query.get("by", "day")
    if by not in reports.GROUPS:
        raise invalid_parameter("by", f"must be one of {'|'.join(reports.GROUPS)}")
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise invalid_parameter("format", "must be json or csv")
    db = request.app[DB]
    zone = await db.run_read(tenant_zone, tenant_id)
    since, until, first, last = period(query, zone)
    rows = await db.run_read(reports.kpis, tenant_id, since, until, by, zone)
    if fmt == "csv":
        return web.Response(body=kpi_csv(rows).encode("utf-8-sig"), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="kpis-{by}-{first}-{last}.csv"'})
    return json_response({"by": by, "from": first.isoformat(), "to": last.isoformat(), "timezone": zone,
                          "rows": rows})


def setup_routes(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/reports/queue", queue_report)
    app.router.add_get(f"{PREFIX}/reports/kpis", kpi_report)
