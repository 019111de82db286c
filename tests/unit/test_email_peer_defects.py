"""Defects the peer corpora showed, each rebuilt as a small mail named after the peer file."""

import base64
from dataclasses import asdict

import msgpack

from connectors.email import parse
from connectors.email.charsets import decode_bytes, decode_header_value
from connectors.inbound import Inbound
from core.envelope import Envelope

CHINESE = "机房环境法规"


def _parse(raw: bytes) -> Inbound:
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw))
    msgpack.packb(asdict(inbound), use_bin_type=True)  # what the normalizer publishes
    return inbound


def _multipart(kind: str, *parts: bytes, headers: bytes = b"From: a@example.com\r\n",
               boundary: bytes = b"b") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return (headers + b'Content-Type: multipart/%s; boundary="%s"\r\n\r\n' % (kind.encode(), boundary)
            + body + b"--" + boundary + b"--\r\n")


def _part(ctype: str, content: bytes, extra: bytes = b"") -> bytes:
    return b"Content-Type: %s\r\n%s\r\n%s" % (ctype.encode(), extra, content)


def test_mail099_broken_iso2022jp_does_not_recurse():
    # NEC row 13 (①) is not JIS X 0208: strict ISO-2022-JP fails; Outlook's CP50220 has it.
    data = b"\x1b$B-!#1ET#38)$N03$H!\"\x1b(B\n"
    assert decode_bytes(data, None) == "①１都３県の鯵と、\n"
    assert decode_bytes(data, "iso-2022-jp") == "①１都３県の鯵と、\n"
    assert isinstance(decode_bytes(b"\x1b$B\x7f\x7f\x1b(B", None), str)  # junk still ends


def test_mail054_header_line_that_lost_its_fold_is_a_continuation():
    raw = (b"X-Tracker: H4sIAAAAAAAAA+NgFlrIKsWRWlGSWpSXmKPExsWi75nTrTtrwZM\r\n"
           b"Ig5drOCwmrVzP5sDoseXbDeYAxijWzLyk/IoE1owFz6ezFkxKrWjafpWpgfF\r\n"
           b"From: Karoline <k@example.com>\r\nSubject: AW: One Net Business\r\n"
           b"Message-ID: <m54@example.com>\r\nReferences: <r1@example.com>\r\n"
           b"Content-Type: multipart/alternative;\r\nboundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nsome text\r\n--b--\r\n")
    got = _parse(raw)
    assert (got.subject, got.own_key, got.thread_refs) == (
        "AW: One Net Business", "m54@example.com", ["r1@example.com"])
    assert got.text == "some text"


def test_mail068_junk_line_before_the_headers_is_dropped():
    raw = (b"---- Original email message ----\r\nReturn-Path: x@example.cz\r\n"
           b"Received: from mail.example.cz\r\nby mail.example.cz with ESMTP\r\n"
           b"Subject: Contact from Server\r\nFrom: x@example.cz\r\n\r\nHello")
    got = _parse(raw)
    assert (got.subject, got.sender.value, got.text) == ("Contact from Server", "x@example.cz", "Hello")


def test_mail068_body_without_a_blank_line_stays_the_body():
    # No well-known field follows the stray lines: they are the body, not headers.
    raw = b"From: a@example.com\r\nSubject: s\r\nHello there\r\nNote: tomorrow\r\n"
    got = _parse(raw)
    assert got.subject == "s" and "Hello there" in got.text and "Note: tomorrow" in got.text


def test_mail085_second_html_of_a_mixed_alternative_is_body():
    raw = _multipart("alternative", _part("text/plain", b"plain version"),
                     _multipart("mixed", _part("text/html", b"<p>first</p>"),
                                _part("text/html", b"<p>second</p>"), headers=b"",
                                boundary=b"inner"))
    got = _parse(raw)
    assert got.text == "plain version"
    assert got.html == "<p>first</p>\n<p>second</p>" and got.attachments == []


def test_mail110_plain_and_html_siblings_in_mixed_are_all_body_in_order():
    raw = _multipart("mixed", _part("text/html", b"<h1>html message</h1>"),
                     _part("text/plain", b"the text part"),
                     _part("text/html", b"<h1>html signature</h1>"))
    got = _parse(raw)
    assert got.text == "html message\n\nthe text part\n\nhtml signature"
    assert got.html == ("<h1>html message</h1>\n<div>the text part</div>\n"
                        "<h1>html signature</h1>")


def test_mail062_related_resources_are_files_and_short_base64_is_decoded():
    raw = _multipart("related", _part("text/html", b"<p>root</p>"),
                     _part("image/jpeg", b"/9j/4AAQSkZJABC123456",
                           b"Content-Transfer-Encoding: base64\r\n"
                           b"Content-ID: <image001.jpg@01CDB132>\r\n"),
                     _part("text/html", b"some html"))
    got = _parse(raw)
    assert got.html == "<p>root</p>"
    assert [(a.filename, a.data) for a in got.attachments] == [
        ("image001.jpg", base64.b64decode("/9j/4AAQSkZJABC12345")),
        ("attachment-2.html", b"some html")]


def test_mail078_uuencode_without_begin_is_decoded():
    raw = _multipart("mixed", _part("text/plain", b"see attached"),
                     _part("application/msword", b",2&5L;&\\@6F%M;6%D\r\n`\r\n",
                           b'Content-Transfer-Encoding: x-uuencode\r\n'
                           b'Content-Disposition: attachment; filename="a.txt"\r\n'))
    assert [(a.filename, a.data) for a in _parse(raw).attachments] == [("a.txt", b"Hello Zammad")]


def test_mail018_delivery_status_part_is_named_by_its_type():
    raw = _multipart("report", _part("text/plain", b"could not deliver"),
                     _part("message/delivery-status", b"Reporting-MTA: dns; mx\r\n\r\n"
                           b"Final-Recipient: rfc822; x@example.com\r\nAction: failed\r\n"))
    [att] = _parse(raw).attachments
    assert att.filename == "delivery-status.txt" and b"Action: failed" in att.data


def test_mail046_raw_gb2312_subject_in_a_latin1_mail():
    subject = "转发：整体提升企业服务水平".encode("gbk")
    raw = _multipart("mixed", _part("text/plain; charset=iso-8859-1", b"Gr\xfc\xdfe"),
                     _part("text/plain; charset=gb2312", CHINESE.encode("gbk")),
                     headers=b"From: a@example.com\r\nSubject: " + subject + b"\r\n")
    got = _parse(raw)
    assert got.subject == "转发：整体提升企业服务水平"
    assert got.text == "Grüße\n\n" + CHINESE


def test_mail023_undeclared_gbk_body_is_chinese():
    body = CHINESE.encode("gbk") + b"\nMessage-ID: <x@example.com>\nplain ascii after it\n"
    got = _parse(b"From: a@example.com\r\nSubject: s\r\n\r\n" + body)
    assert got.text.startswith(CHINESE + "\n")


def test_mail105_short_latin1_is_not_read_as_big5():
    assert decode_bytes(b"\xe4\xf6\xfc\xdf ad asd", None) == "äöüß ad asd"
    assert decode_bytes(b"\xe4\xf6\xfc\xdf ad asd", None, ("iso-8859-1",)) == "äöüß ad asd"


def test_mail060_iso_gb2312_label_with_utf8_then_latin1_runs():
    data = "Here it goes - äöü - 差出人".encode() + "Here it goes - äöü - hi \xad".encode("latin-1")
    assert decode_bytes(data, "iso-gb2312") == "Here it goes - äöü - 差出人Here it goes - äöü - hi \xad"
    assert decode_bytes(CHINESE.encode("gbk"), "iso-gb2312") == CHINESE


def test_mail093_raw_shift_jis_subject_in_an_iso2022jp_mail():
    assert decode_header_value("ツール".encode("cp932"), ("iso-2022-jp",)) == "ツール"


def test_mail019_from_without_address_uses_reply_to():
    raw = (b'From: "=?GB2312?B?ztI=?=" <>\r\nReturn-Path: <>\r\n'
           b"Reply-To: <vipyiming@126.com>\r\nSubject: s\r\n\r\nhi")
    assert _parse(raw).sender.value == "vipyiming@126.com"


def test_mail016_reply_to_goes_before_the_return_path():
    raw = (b"Return-Path: <w2sjy@ns2.actionserv.com>\r\nReply-To: <vipyimin@126.com>\r\n"
           b"Subject: s\r\n\r\nhi")
    assert _parse(raw).sender.value == "vipyimin@126.com"
    raw = b"Return-Path: <bounce@example.com>\r\nSender: <list@example.com>\r\n\r\nhi"
    assert _parse(raw).sender.value == "list@example.com"


def test_mail053_mailer_daemon_without_a_domain_is_the_sender():
    raw = b"From: MAILER-DAEMON (Mail Delivery System)\r\nReturn-Path: <>\r\n\r\nundeliverable"
    got = _parse(raw)
    assert (got.sender.value, got.auto_reason) == ("mailer-daemon", "bounce")


def test_mail007_table_cells_are_separated_in_the_text():
    raw = b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n<table><tr><td>Von:</td><td>Martin</td></tr></table>"
    assert _parse(raw).text == "Von: Martin"
