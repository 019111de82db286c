"""winmail.dat from Outlook/Exchange: the files inside become the message's attachments."""

import base64
import struct

from connectors.email import parse
from core.envelope import Envelope

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4


def _attr(level: int, attr_id: int, attr_type: int, data: bytes) -> bytes:
    # [MS-OXTNEF] §2.1.3.1: level, id, type, length, data, checksum (byte sum mod 65536).
    return struct.pack("<BHHI", level, attr_id, attr_type, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def winmail(files: list[tuple[str, bytes]], body: bytes = b"") -> bytes:
    """A TNEF stream as Exchange writes it: version, code page, body, then each attachment."""
    out = struct.pack("<IH", 0x223E9F78, 0x0001)
    out += _attr(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += _attr(1, 0x9007, 0x0006, struct.pack("<II", 1252, 0))  # attOemCodepage
    if body:
        out += _attr(1, 0x800C, 0x0002, body)  # attBody
    for name, data in files:
        out += _attr(2, 0x9002, 0x0006, struct.pack("<HIIIH", 1, 0xFFFFFFFF, 0, 0, 0))  # attAttachRendData
        out += _attr(2, 0x8010, 0x0001, name.encode() + b"\x00")  # attAttachTitle
        out += _attr(2, 0x800F, 0x0006, data)  # attAttachData
    return out


def _outlook_mail(blob: bytes) -> bytes:
    b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
    return (
        b"From: Li Lei <li.lei@contoso.example>\r\nTo: help@acme.test\r\nSubject: Invoice\r\n"
        b"Message-ID: <DM6PR01MB1234@DM6PR01MB1234.prod.exchangelabs.com>\r\n"
        b"X-MS-Has-Attach: yes\r\nX-MS-TNEF-Correlator: <DM6PR01MB1234@contoso.example>\r\n"
        b'Content-Type: multipart/mixed; boundary="_x_"\r\n\r\n'
        b"--_x_\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nInvoice attached.\r\n"
        b'--_x_\r\nContent-Type: application/ms-tnef; name="winmail.dat"\r\n'
        b'Content-Disposition: attachment; filename="winmail.dat"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64 + b"--_x_--\r\n"
    )


def _parse(raw: bytes):
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw))
    return inbound


def test_winmail_dat_is_unpacked_into_its_files():
    got = _parse(_outlook_mail(winmail([("invoice-2026-11.pdf", PDF), ("notes.txt", b"call back")])))
    assert [(a.filename, a.data) for a in got.attachments] == [("invoice-2026-11.pdf", PDF), ("notes.txt", b"call back")]
    assert got.text == "Invoice attached."


def test_tnef_body_is_the_text_when_the_mime_body_is_empty():
    raw = _outlook_mail(winmail([], body="Grüße aus Köln".encode("cp1252"))).replace(b"Invoice attached.\r\n", b"")
    got = _parse(raw)
    assert got.text == "Grüße aus Köln" and got.attachments == []


def test_broken_winmail_dat_is_kept_as_it_came():
    # Not TNEF at all (truncated upload): the blob stays, nothing crashes.
    got = _parse(_outlook_mail(b"\x78\x9f\x3e\x22garbage"))
    [(name, data)] = [(a.filename, a.data) for a in got.attachments]
    assert (name, data) == ("winmail.dat", b"\x78\x9f\x3e\x22garbage")
