"""What every admin subcommand does around its own work: open the store, migrate, run, print.

The subcommand gives the coroutine that does its work with the database; this runs it and
turns the errors an administrator can cause into one line on stderr and an exit status:
1 for something not found or refused by the store, 2 for a request the API would answer 400
(an invalid condition names its path, as the API does).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from core.settings import Settings
from rules.conditions import ConditionError
from ticket_service.api.errors import ApiError
from ticket_service.store import admin
from ticket_service.store.db import Database, migrate

Work = Callable[[Database], Awaitable[object]]


def run(settings: Settings, work: Work, render: Callable[[object], str] | None = None) -> int:
    async def main() -> object:
        db = Database(settings.effective_database_url)
        try:
            await migrate(db)
            return await work(db)
        finally:
            await db.dispose()

    try:
        result = asyncio.run(main())
    except ConditionError as exc:
        return _fail(f"{exc.path}: {exc.message}", 2)
    except ApiError as exc:
        return _fail(exc.message, 2)
    except (admin.NotFound, ValueError, OSError) as exc:
        return _fail(str(exc), 1)
    print(render(result) if render else json.dumps(result, indent=2, ensure_ascii=False))
    return 0


async def tenant(db: Database, name: str) -> int:
    async with db.read() as conn:
        return await admin.tenant_id(conn, name)


def _fail(message: str, code: int) -> int:
    print(f"switchboard: {message}", file=sys.stderr)
    return code
