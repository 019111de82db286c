"""An SMTP server for the outbound tests, run as its own process: every accepted mail is
written to a folder (``<n>.eml`` and ``<n>.json`` with the envelope), or each RCPT gets
the answer given with ``--answer``.

    python tests/smtp_sink.py --port 2600 --folder /tmp/sink [--cert C --key K --login U:P]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, folder: Path, answer: str) -> None:
        self.folder, self.answer, self.count = folder, answer, 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.answer:
            return self.answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = self.folder / str(self.count)
        stem.with_suffix(".eml").write_bytes(envelope.original_content or envelope.content)
        stem.with_suffix(".json").write_text(json.dumps({
            "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options, "tls": session.ssl is not None,
            "login": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        }))
        return f"250 2.0.0 Ok: queued as Q{self.count}"


def _authenticator(login: str):
    user, _, password = login.partition(":")

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return check


async def main(args: argparse.Namespace) -> None:
    handler = Sink(Path(args.folder), args.answer)
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    options = {"hostname": "sink.test", "enable_SMTPUTF8": True, "tls_context": tls,
               "require_starttls": bool(tls)}
    if args.login:
        options |= {"authenticator": _authenticator(args.login), "auth_required": True,
                    "auth_require_tls": True}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **options), "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--answer", default="", help='e.g. "451 4.3.0 try later" for every RCPT')
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--login", default="", help="USER:PASSWORD required (after STARTTLS)")
    arguments = parser.parse_args()
    Path(arguments.folder).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments))
