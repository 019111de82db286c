"""The supervisor's dashboard (``/dashboard``): the queue and agents now, KPIs and SLAs over a period.

Reads the same store functions as ``GET /api/v1/reports/...``; every chart and table has a
CSV link whose file is the one the reports API writes (``reports.kpi_csv``), signed in by
the console session instead of an API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from aiohttp import web
from sqlalchemy.engine import Connection

from console import auth, charts, i18n, render
from core.ids import now_ms
from ticket_service.store import reports

DEFAULT_DAYS = 14
CSV = "text/csv"


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days ``first``..``last`` in the tenant's zone, as [since, until) in ms."""

    first: date
    last: date
    since: int
    until: int

    @classmethod
    def parse(cls, query, zone: str) -> Period:
        """``from``/``to`` ISO dates; a missing or unreadable one falls back to the last 14 days."""
        tz = i18n.zone(zone)
        last = _day(query.get("to")) or datetime.now(tz).date()
        first = _day(query.get("from")) or last - timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            first = last - timedelta(days=DEFAULT_DAYS - 1)
        first = max(first, last - timedelta(days=reports.MAX_DAYS - 1))
        since = datetime.combine(first, time(), tz).timestamp() * 1000
        until = datetime.combine(last + timedelta(days=1), time(), tz).timestamp() * 1000
        return cls(first, last, int(since), int(until))

    def days(self) -> list[str]:
        return [(self.first + timedelta(days=n)).isoformat() for n in range((self.last - self.first).days + 1)]

    def query(self) -> str:
        return f"from={self.first.isoformat()}&to={self.last.isoformat()}"


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _zone(user: auth.User) -> str:
    return i18n.zone(user.timezone).key


def _by(request: web.Request) -> str:
    by = request.query.get("by", "day")
    if by not in reports.GROUPS:
        raise web.HTTPNotFound()
    return by


def _read_all(conn: Connection, tenant_id: int, p: Period, zone: str) -> dict:
    data = {"queue": reports.queue_depth(conn, tenant_id), "agents": reports.agent_loads(conn, tenant_id),
            "kpis": {by: reports.kpis(conn, tenant_id, p.since, p.until, by, zone) for by in reports.GROUPS}}
    sla = reports.sla_summary(conn, tenant_id, p.since, p.until, "day", zone, now_ms())
    sla["by"] = {"day": sla.pop("rows")} | {
        by: reports.sla_attainment(conn, tenant_id, p.since, p.until, by, zone) for by in ("channel", "agent")}
    data["sla"] = sla
    return data


def _by_day(rows: list[dict], p: Period, empty: dict) -> list[dict]:
    """One row per day of the period (days without tickets too), so the axis has no holes."""
    seen = {r["key"]: r for r in rows}
    return [seen.get(day, {**empty, "key": day}) for day in p.days()]


def _kpi_charts(lang: str, by: str, rows: list[dict], p: Period) -> dict:
    def t(key: str) -> str:
        return i18n.t(lang, key)

    if by == "day":
        rows = _by_day(rows, p, {"volume": 0, "replied": 0, "solved": 0})
    labels = [_name(lang, by, r["key"]) for r in rows]
    times = [r.get(f) or 0 for r in rows for f in ("first_reply_p90_s", "resolution_p90_s")]
    size, unit = charts.time_unit(max(times, default=0))

    def shown(value: float) -> str:
        return f"{value:g} {t(unit)}" if value == int(value) else f"{value:.1f} {t(unit)}"

    def series(field: str, css: str, key: str) -> charts.Series:
        values = [None if r.get(field) is None else r[field] / size for r in rows]
        return charts.Series(t(key), css, values)

    volume = [charts.Series(t("kpi.volume"), "s1", [r["volume"] for r in rows])]
    reply = [series("first_reply_p50_s", "s1", "kpi.p50"), series("first_reply_p90_s", "s2", "kpi.p90")]
    solve = [series("resolution_p50_s", "s1", "kpi.p50"), series("resolution_p90_s", "s2", "kpi.p90")]
    if by == "day":
        short = _short_day
        out = {"volume": charts.columns(labels, volume, short),
               "first_reply": charts.lines(labels, reply, short, shown),
               "resolution": charts.lines(labels, solve, short, shown)}
    else:
        out = {"volume": charts.hbars(labels, volume), "first_reply": charts.hbars(labels, reply, shown),
               "resolution": charts.hbars(labels, solve, shown)}
    return out | {"unit": unit}


def _short_day(day: str) -> str:
    return day[5:]  # 2026-11-20 -> 11-20; the bar's title has the whole date


def _name(lang: str, by: str, key: str) -> str:
    if by == "channel":
        return i18n.label(lang, "channel", key)
    if by == "agent" and key == reports.UNASSIGNED:
        return i18n.t(lang, "ticket.unassigned")
    return key


def _sla_charts(lang: str, sla: dict, p: Period) -> dict:
    out = {}
    for by, rows in sla["by"].items():
        if by == "day":
            rows = _by_day(rows, p, {"met": 0, "breached": 0, "attainment_pct": None})
        labels = [_name(lang, by, r["key"]) for r in rows]
        series = [charts.Series(i18n.t(lang, "sla.attainment"), "s1", [r["attainment_pct"] for r in rows])]
        out[by] = (charts.columns(labels, series, _short_day, _percent) if by == "day"
                   else charts.hbars(labels, series, _percent))
    return out


def _percent(value: float) -> str:
    return f"{value:g} %"


def _queue_chart(lang: str, depth: list[dict]) -> dict:
    labels = [f"VIP {d['vip_tier']} · {i18n.label(lang, 'channel', d['channel'])}" for d in depth]
    return charts.hbars(labels, [charts.Series(i18n.t(lang, "dash.waiting"), "s1", [d["waiting"] for d in depth])])


@auth.signed_in("supervisor")
async def dashboard(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    zone = _zone(user)
    p = Period.parse(request.query, zone)
    lang = i18n.language(request)
    async with request.app[auth.DB].read() as conn:
        data = await conn.run_sync(_read_all, user.tenant_id, p, zone)
    now = now_ms()
    oldest = min((d["oldest_queued_at"] for d in data["queue"]), default=None)
    sla = data["sla"]
    return render.render(request, "dashboard.html", {
        "title_key": "dash.title", "page": "dashboard", "p": p, "queue": data["queue"], "now": now,
        "waiting": sum(d["waiting"] for d in data["queue"]),
        "oldest_wait": None if oldest is None else i18n.duration(lang, (now - oldest) / 1000),
        "queue_chart": _queue_chart(lang, data["queue"]),
        "agents": [a | {"gauges": {c: charts.gauge(v["load"], v["capacity"]) for c, v in a["load"].items()}}
                   for a in data["agents"]],
        "kpis": data["kpis"], "kpi_charts": {by: _kpi_charts(lang, by, rows, p) for by, rows in data["kpis"].items()},
        "groups": reports.GROUPS, "sla": sla, "sla_charts": _sla_charts(lang, sla, p) if sla else None,
        "duration": lambda s: "—" if s is None else i18n.duration(lang, s),
        "name": lambda by, key: _name(lang, by, key),
    })


def _csv(text: str, filename: str) -> web.Response:
    # UTF-8 with a byte-order mark, as the reports API: spreadsheet programs read Chinese names right.
    response = web.Response(body=text.encode("utf-8-sig"), content_type=CSV, charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return render.secure(response)


@auth.signed_in("supervisor")
async def kpis_csv(request: web.Request) -> web.Response:
    """The file ``GET /api/v1/reports/kpis?format=csv`` gives for the same period and grouping."""
    user: auth.User = request[auth.USER]
    by, zone = _by(request), _zone(user)
    p = Period.parse(request.query, zone)
    rows = await request.app[auth.DB].run_read(reports.kpis, user.tenant_id, p.since, p.until, by, zone)
    return _csv(reports.kpi_csv(rows), f"kpis-{by}-{p.first}-{p.last}.csv")


@auth.signed_in("supervisor")
async def sla_csv(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    by, zone = _by(request), _zone(user)
    p = Period.parse(request.query, zone)
    sla = await request.app[auth.DB].run_read(reports.sla_summary, user.tenant_id, p.since, p.until, by, zone,
                                              now_ms())
    return _csv(reports.csv_text(reports.SLA_COLUMNS, sla["rows"]), f"sla-{by}-{p.first}-{p.last}.csv")


@auth.signed_in("supervisor")
async def queue_csv(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    rows = await request.app[auth.DB].run_read(reports.queue_depth, user.tenant_id)
    return _csv(reports.queue_csv(rows), "queue.csv")


@auth.signed_in("supervisor")
async def agents_csv(request: web.Request) -> web.Response:
    user: auth.User = request[auth.USER]
    rows = await request.app[auth.DB].run_read(reports.agent_loads, user.tenant_id)
    return _csv(reports.agents_csv(rows), "agents.csv")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard/kpis.csv", kpis_csv)
    app.router.add_get("/dashboard/sla.csv", sla_csv)
    app.router.add_get("/dashboard/queue.csv", queue_csv)
    app.router.add_get("/dashboard/agents.csv", agents_csv)
