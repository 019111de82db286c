"""A relay for the outbound bench, in its own process: accepts every mail and counts it.

    python -m ops.bench.smtp_sink --port 2600
"""

from __future__ import annotations

import argparse
import asyncio

from aiosmtpd.smtp import SMTP


class Sink:
    """aiosmtpd handler: 250 for every mail, with a queue id as a relay gives one."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        return f"250 2.0.0 Ok: queued as B{self.count}"


async def main(port: int) -> None:
    handler = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.bench", enable_SMTPUTF8=True),
                                      "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m ops.bench.smtp_sink")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
