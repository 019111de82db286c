"""`ops streams` (and the console's ops page, which shows the same) reads the group's pending
count and then its oldest pending entry: a worker may ack that entry in between."""

from __future__ import annotations

import redis.asyncio as aioredis

from ops import streams


class AckedInBetween(aioredis.Redis):
    """A real client whose first pending-range read comes just after a worker acked everything."""

    async def xpending_range(self, name, groupname, *args, **kwargs):
        for entry in await super().xpending_range(name, groupname, min="-", max="+", count=100):
            await self.xack(name, groupname, entry["message_id"])
        return await super().xpending_range(name, groupname, *args, **kwargs)


async def test_an_entry_acked_between_the_two_reads_leaves_no_age_and_no_error(redis_url):
    client = AckedInBetween.from_url(redis_url)
    try:
        await client.xgroup_create("ingest.email", "normalizer", id="0", mkstream=True)
        await client.xadd("ingest.email", {"e": b"x"})
        await client.xreadgroup("normalizer", "worker-1", {"ingest.email": ">"}, count=1)
        [group] = [g for s in await streams.streams(client) if s["stream"] == "ingest.email" for g in s["groups"]]
        assert (group["group"], group["pending"], group["oldest_pending_age_s"]) == ("normalizer", 1, None)
        assert [(c["name"], c["pending"]) for c in group["consumer_list"]] == [("worker-1", 0)]
    finally:
        await client.aclose()
