"""First start on an empty data folder: a demo tenant with a support address and an API key."""

from __future__ import annotations

import json
import os

from ops.runtime import Runtime
from ticket_service.store import admin

DEMO_TENANT = "demo"
DEMO_ADDRESS = "support@example.com"


async def ensure_demo(rt: Runtime) -> dict:
    """Create the demo tenant once and remember it in ``<data>/demo.json``."""
    path = rt.settings.data_dir / "demo.json"
    if path.exists():
        return json.loads(path.read_text())
    async with rt.db.write() as conn:
        tenant = await admin.create_tenant(conn, DEMO_TENANT, "Demo shop")
        await admin.add_account(conn, tenant, "email", DEMO_ADDRESS)
        key = await admin.create_api_key(conn, tenant, "demo")
    demo = {"tenant": DEMO_TENANT, "api_key": key, "email": DEMO_ADDRESS}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(demo, indent=2) + "\n")
    os.chmod(tmp, 0o600)  # it holds a live API key
    tmp.replace(path)
    return demo
