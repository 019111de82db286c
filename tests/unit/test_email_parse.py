import base64
import hashlib
from dataclasses import asdict
from email import message_from_bytes, policy
from email.message import EmailMessage

import msgpack
import pytest

from connectors.email import UnparseableMail, parse
from connectors.email.mime import MAX_PARTS
from connectors.inbound import Inbound
from core.envelope import Envelope

CHINESE = ("您好，我在贵公司网站上购买的商品已经过了一周还没有收到，订单号是二零二四零三一五。"
           "请尽快帮我查询物流状态，如果无法送达请安排退款。谢谢您的帮助！")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _mail(*headers: str, body: bytes = b"") -> bytes:
    return "\r\n".join(headers).encode("ascii") + b"\r\n\r\n" + body


def _parse(raw: bytes, **meta: str) -> Inbound:
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw, meta=meta))
    msgpack.packb(asdict(inbound), use_bin_type=True)  # what the normalizer publishes
    return inbound


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_plain_ascii_mail():
    raw = _mail(
        'From: "Ann Lee" <Ann.Lee@Example.COM>',
        "To: support@acme.test, Bob <bob@acme.test>",
        "Cc: carol@acme.test",
        "Reply-To: replies@example.com",
        "Subject: Where is   my\r\n order?",
        "Date: Tue, 05 Mar 2024 10:00:00 +0800",
        "Message-ID: <CAF=abc.DEF@mail.example.com>",
        body=b"Hello,\r\nmy order has not arrived.\r\n",
    )
    got = _parse(raw, mail_from="ann.lee@example.com", rcpt_to="support@acme.test,help@acme.test")
    assert got.sender.value == "ann.lee@example.com" and got.sender.name == "Ann Lee"
    assert got.subject == "Where is my order?"
    assert got.text == "Hello,\nmy order has not arrived."
    assert got.html == "" and got.attachments == []
    assert got.sent_at == 1709604000000
    # Message-IDs are case-sensitive: only whitespace and <> go.
    assert got.dedup_key == got.own_key == got.thread_root == "CAF=abc.DEF@mail.example.com"
    assert got.thread_refs == [] and got.ticket_number is None and got.auto_reason == ""
    assert got.headers == {
        "message_id": "CAF=abc.DEF@mail.example.com", "in_reply_to": "", "references": [],
        "to": ["support@acme.test", "bob@acme.test"], "cc": ["carol@acme.test"],
        "reply_to": "replies@example.com", "date": "Tue, 05 Mar 2024 10:00:00 +0800",
        "mail_from": "ann.lee@example.com", "rcpt_to": ["support@acme.test", "help@acme.test"],
    }


def test_gb2312_label_with_gbk_character_and_gbk_encoded_subject():
    subject = base64.b64encode("关于朱镕基的订单".encode("gbk")).decode()
    raw = _mail(
        "From: =?gbk?B?" + base64.b64encode("张三".encode("gbk")).decode() + "?= <z@example.cn>",
        f"Subject: =?gbk?B?{subject}?=",
        "Message-ID: <1@example.cn>",
        "Content-Type: text/plain; charset=gb2312",
        "Content-Transfer-Encoding: 8bit",
        body="朱镕基总理，您好。".encode("gbk"),  # 镕 = 0xE946, GBK only
    )
    got = _parse(raw)
    assert got.subject == "关于朱镕基的订单"
    assert got.sender.name == "张三"
    assert got.text == "朱镕基总理，您好。"


def test_raw_8bit_gbk_subject_uses_the_body_charset():
    # Foxmail and old Outlook send unencoded 8-bit headers in the body's charset.
    raw = (b"From: a@example.cn\r\nMessage-ID: <2@example.cn>\r\nSubject: "
           + "退款申请".encode("gbk")
           + b"\r\nContent-Type: text/plain; charset=GBK\r\n\r\n" + "请退款".encode("gbk"))
    got = _parse(raw)
    assert got.subject == "退款申请" and got.text == "请退款"


def test_big5_body_with_hkscs_character():
    raw = _mail(
        "From: hk@example.hk", "Message-ID: <3@example.hk>",
        "Content-Type: text/plain; charset=big5", "Content-Transfer-Encoding: 8bit",
        body="部電話壞咗㗎，點算？".encode("big5hkscs"),  # 㗎 = 0x9DEE, HKSCS only
    )
    assert _parse(raw).text == "部電話壞咗㗎，點算？"


def test_iso_2022_jp_subject_and_body():
    subject = base64.b64encode("注文について".encode("iso2022_jp")).decode()
    raw = _mail(
        "From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?= <yamada@example.jp>",
        f"Subject: =?ISO-2022-JP?B?{subject}?=",
        "Message-ID: <4@example.jp>",
        "Content-Type: text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit",
        body="商品がまだ届きません。".encode("iso2022_jp"),
    )
    got = _parse(raw)
    assert got.subject == "注文について"
    assert got.sender.name == "山田"
    assert got.text == "商品がまだ届きません。"


@pytest.mark.parametrize("charset, codec", [("koi8-r", "koi8_r"), ("windows-1251", "cp1251")])
def test_cyrillic_charsets(charset, codec):
    text = "Здравствуйте! Мой заказ N 15 не пришёл."
    subject = base64.b64encode("Заказ не пришёл".encode(codec)).decode()
    raw = _mail(
        "From: ivan@example.ru", "Message-ID: <5@example.ru>",
        f"Subject: =?{charset}?B?{subject}?=",
        f"Content-Type: text/plain; charset={charset}", "Content-Transfer-Encoding: 8bit",
        body=text.encode(codec),
    )
    got = _parse(raw)
    assert got.subject == "Заказ не пришёл" and got.text == text


def test_undeclared_8bit_utf8_body():
    raw = _mail("From: a@example.de", "Message-ID: <6@example.de>", "Content-Type: text/plain",
                body="Grüße aus München — 你好".encode())
    assert _parse(raw).text == "Grüße aus München — 你好"


@pytest.mark.parametrize("declared", ["us-ascii", "utf-8"])
def test_gbk_body_under_wrong_charset_is_detected(declared):
    raw = _mail("From: a@example.cn", "Message-ID: <7@example.cn>",
                f"Content-Type: text/plain; charset={declared}", "Content-Transfer-Encoding: 8bit",
                body=CHINESE.encode("gbk"))
    assert _parse(raw).text == CHINESE


def test_html_only_mail_is_sanitized_and_gives_text():
    html = (b"<html><head><title>Newsletter</title><style>p{color:red}</style></head><body>"
            b'<p onclick="steal()">Hello&nbsp;Ann,<br>your <b>order</b> &amp; invoice</p>'
            b"<script>alert(1)</script><p><a href=\"https://example.com/t\">Track it</a></p>"
            b"<a href=\"javascript:alert(2)\">x</a></body></html>")
    raw = _mail("From: shop@example.com", "Message-ID: <8@example.com>",
                "Content-Type: text/html; charset=utf-8", body=html)
    got = _parse(raw)
    assert got.text == "Hello Ann,\nyour order & invoice\n\nTrack it\nx"
    assert "<script" not in got.html and "alert" not in got.html and "onclick" not in got.html
    assert "color:red" not in got.html and "Newsletter" not in got.html
    assert "<b>order</b>" in got.html and 'href="https://example.com/t"' in got.html
    assert "javascript" not in got.html


def test_alternative_with_inline_image_and_attachment():
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.com>"
    msg["Message-ID"] = "<9@example.com>"
    msg["Subject"] = "Broken part"
    msg.set_content("See the photo.")
    msg.add_alternative('<p>See <img src="cid:photo1@example.com"></p>', subtype="html")
    msg.get_payload()[1].add_related(PNG, "image", "png", cid="<photo1@example.com>",
                                     disposition="inline", filename="photo.png")
    msg.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf",
                       filename="receipt.pdf")
    got = _parse(msg.as_bytes())
    assert got.text == "See the photo."
    assert got.html == '<p>See <img src="cid:photo1@example.com"></p>'
    photo, receipt = got.attachments
    assert (photo.filename, photo.content_type, photo.content_id, photo.inline) == (
        "photo.png", "image/png", "photo1@example.com", True)
    assert photo.size == len(PNG) and _sha(photo.data) == _sha(PNG)
    assert (receipt.filename, receipt.content_type, receipt.inline) == (
        "receipt.pdf", "application/pdf", False)
    assert receipt.data == b"%PDF-1.4 data"


def test_rfc2231_filename_in_gb2312_with_continuations():
    raw = _mail(
        "From: a@example.cn", "Message-ID: <10@example.cn>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
              b"Content-Type: application/octet-stream\r\n"
              b'Content-Disposition: attachment; filename="fallback.xls";\r\n'
              b" filename*0*=gb2312''%D6%EC%E9%46; filename*1*=%B1%A8%B1%ED;\r\n"
              b" filename*2=.xls\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              + _b64(b"cells") + b"--b--\r\n"),
    )
    [sheet] = _parse(raw).attachments
    # RFC 6266 §4.3: filename* wins over filename; gb2312 is decoded as GB18030 (镕).
    assert sheet.filename == "朱镕报表.xls"
    assert sheet.data == b"cells" and sheet.size == 5


def test_rfc2047_word_inside_quoted_filename_and_name_fallback():
    word = base64.b64encode("报价单.pdf".encode()).decode()
    gbk_word = base64.b64encode("发票.png".encode("gbk")).decode()
    raw = _mail(
        "From: a@example.cn", "Message-ID: <11@example.cn>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(f'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; '
              f'filename="=?utf-8?B?{word}?="\r\n\r\n%PDF\r\n'
              f'--b\r\nContent-Type: image/png; name="=?gbk?B?{gbk_word}?="\r\n'
              f"Content-Transfer-Encoding: base64\r\n\r\n").encode()
             + _b64(PNG) + b"--b--\r\n",
    )
    quote, invoice = _parse(raw).attachments
    assert quote.filename == "报价单.pdf" and quote.data == b"%PDF"
    assert invoice.filename == "发票.png" and _sha(invoice.data) == _sha(PNG)


@pytest.mark.parametrize(
    "disposition, expected",
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\Users\\\\x\\\\evil.bat"', "evil.bat"),
        ('attachment; filename=".."', "attachment-1.bin"),
        ("attachment; filename=\"invoice\u202efdp.exe\"", "invoicefdp.exe"),  # RTL override
        ("attachment", "attachment-1.bin"),
    ],
)
def test_attachment_names_are_made_safe(disposition, expected):
    raw = _mail(
        "From: a@example.com", "Message-ID: <12@example.com>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(f"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
              f"Content-Type: application/octet-stream\r\nContent-Disposition: {disposition}\r\n"
              f"\r\nxyz\r\n--b--\r\n").encode(),
    )
    [attachment] = _parse(raw).attachments
    assert attachment.filename == expected and attachment.data == b"xyz"


def test_forwarded_message_becomes_an_eml_attachment():
    inner = _mail("From: boss@example.com", "Subject: =?utf-8?Q?Q3_r=C3=A9sum=C3=A9/plan?=",
                  "Message-ID: <inner@example.com>", body=b"Inner text\r\n")
    raw = _mail(
        "From: fwd@example.com", "Message-ID: <13@example.com>", "Subject: Fwd: plan",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(b"--b\r\nContent-Type: text/plain\r\n\r\nPlease look.\r\n--b\r\n"
              b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--b--\r\n"),
    )
    got = _parse(raw)
    assert got.text == "Please look."
    [eml] = got.attachments
    assert eml.filename == "Q3 résumé_plan.eml" and eml.content_type == "message/rfc822"
    back = message_from_bytes(eml.data, policy=policy.default)
    assert back["Message-ID"] == "<inner@example.com>"
    assert back.get_content().strip() == "Inner text"


def _auto(*headers: str, meta: dict[str, str] | None = None) -> str:
    raw = _mail("Message-ID: <14@example.com>", *headers, body=b"I am away.\r\n")
    return _parse(raw, **(meta or {})).auto_reason


@pytest.mark.parametrize(
    "headers, expected",
    [
        (["From: a@example.com", "Auto-Submitted: auto-replied"], "auto-submitted:auto-replied"),
        (["From: a@example.com", "Auto-Submitted: Auto-Generated; owner-email=x@y"],
         "auto-submitted:auto-generated"),
        (["From: a@example.com", "Auto-Submitted: no"], ""),
        (["From: a@example.com", "Precedence: bulk"], "precedence:bulk"),
        (["From: a@example.com", "Precedence: junk"], "precedence:junk"),
        (["From: a@example.com", "Precedence: list"], "precedence:list"),
        (["From: a@example.com", "Precedence: first-class"], ""),
        (["From: a@example.com", "X-Autoreply: yes"], "x-autoreply"),
        (["From: a@example.com", "X-Autorespond: Out of office"], "x-autorespond"),
        (["From: a@example.com", "X-Auto-Reply: 1"], "x-auto-reply"),
        (["From: a@example.com", "X-Auto-Response-Suppress: All"], "x-auto-response-suppress:all"),
        (["From: a@example.com", "X-Auto-Response-Suppress: DR, RN, NRN, OOF"],
         "x-auto-response-suppress:oof"),
        (["From: a@example.com", "X-Auto-Response-Suppress: NDR"], ""),
        (["From: a@example.com", "X-Autogenerated: Reply"], "x-autogenerated"),
        (["From: a@example.com", "List-Id: Shop news <news.example.com>"], "list"),
        (["From: a@example.com", "List-Unsubscribe: <mailto:u@example.com>"], "list"),
        (["From: a@example.com", "X-Loop: support@acme.test"], "x-loop"),
        (["From: MAILER-DAEMON@mx.example.com", "Return-Path: <>"], "bounce"),
        (["From: postmaster@example.com", "Return-Path: <>"], "bounce"),
        (["From: postmaster@example.com", "Return-Path: <admin@example.com>"], ""),
    ],
)
def test_auto_reply_reasons(headers, expected):
    assert _auto(*headers) == expected


def test_null_smtp_sender_from_mailer_daemon_is_a_bounce():
    # The SMTP MAIL FROM wins over a Return-Path header the sender wrote.
    assert _auto("From: Mail Delivery System <MAILER-DAEMON@mx.example.com>",
                 "Return-Path: <someone@example.com>", meta={"mail_from": ""}) == "bounce"


@pytest.mark.parametrize("report_type, expected",
                         [("delivery-status", "bounce"), ("disposition-notification", "read-receipt")])
def test_multipart_reports(report_type, expected):
    raw = _mail(
        "From: mx@example.com", "Message-ID: <15@example.com>",
        f'Content-Type: multipart/report; report-type={report_type}; boundary="r"',
        body=(b"--r\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n--r\r\n"
              b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com"
              b"\r\n\r\nFinal-Recipient: rfc822; x@example.com\r\nAction: failed\r\n--r--\r\n"),
    )
    got = _parse(raw)
    assert got.auto_reason == expected and got.text == "Could not deliver."
    [status] = got.attachments
    assert status.content_type == "message/delivery-status"
    assert b"Action: failed" in status.data


def test_mail_without_message_id_is_keyed_by_its_header_block():
    header = b"From: a@example.com\r\nSubject: hi\r\nDate: Tue, 05 Mar 2024 10:00:00 +0000"
    raw = header + b"\r\n\r\nbody\r\n"
    first, again = _parse(raw), _parse(raw)
    assert first.dedup_key == again.dedup_key == "hdr:" + _sha(header)
    assert first.own_key == "" and first.thread_root == first.dedup_key
    assert first.headers["message_id"] == ""
    other = _parse(raw.replace(b"Subject: hi", b"Subject: ho"))
    assert other.dedup_key != first.dedup_key


def test_in_reply_to_and_references_give_thread_keys():
    raw = _mail(
        "From: a@example.com", "Message-ID: < Reply3@Example.com >",
        'In-Reply-To: "Your message of Monday" <Reply2@Example.com>',
        "References: <Root@Example.com>\r\n <Reply1@Example.com>\r\n\t<Reply2@Example.com>",
        body=b"thanks",
    )
    got = _parse(raw)
    assert got.own_key == "Reply3@Example.com"
    assert got.thread_refs == ["Reply2@Example.com", "Reply1@Example.com", "Root@Example.com"]
    assert got.thread_root == "Root@Example.com"
    assert got.headers["in_reply_to"] == "Reply2@Example.com"
    assert got.headers["references"] == ["Root@Example.com", "Reply1@Example.com",
                                         "Reply2@Example.com"]


def test_in_reply_to_alone_is_the_root():
    got = _parse(_mail("From: a@example.com", "In-Reply-To: <parent@x>", body=b"ok"))
    assert got.thread_refs == ["parent@x"] and got.thread_root == "parent@x"


@pytest.mark.parametrize(
    "subject, number",
    [
        ("Re: [#123] Refund", 123),
        ("RE: Refund [Ticket #4567]", 4567),
        ("Fwd: [ticket#89] x", 89),
        ("Order #123 is late", None),
        ("[#] nothing", None),
    ],
)
def test_ticket_number_from_subject_tag(subject, number):
    got = _parse(_mail("From: a@example.com", "Message-ID: <16@x>", f"Subject: {subject}",
                       body=b"x"))
    assert got.ticket_number == number


def test_sender_falls_back_to_sender_header_then_return_path():
    got = _parse(_mail("From: undisclosed", "Sender: Desk <Desk@Example.com>",
                       "Message-ID: <17@x>", body=b"x"))
    assert (got.sender.value, got.sender.name) == ("desk@example.com", "Desk")
    got = _parse(_mail("Message-ID: <18@x>", body=b"x"), mail_from="Bounce@Example.com")
    assert got.sender.value == "bounce@example.com"


def test_missing_or_bad_date_is_none():
    assert _parse(_mail("From: a@x.y", "Date: not a date", body=b"x")).sent_at is None
    assert _parse(_mail("From: a@x.y", body=b"x")).sent_at is None


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "empty payload"),
        (b" \r\n\r\n \t", "empty payload"),
        (bytes(range(256)) * 8, "no header fields"),
        (PNG * 10, "no header fields"),
        (b"just some words, not a mail at all", "no header fields"),
        (b"Subject: only a subject\r\n", "no From, no Message-ID and no body"),
        (b'{"json": true}\n', "no From, no Message-ID and no body"),
    ],
)
def test_garbage_is_unparseable(raw, reason):
    with pytest.raises(UnparseableMail, match=reason):
        _parse(raw)


def _nested(levels: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nlevel %d\r\n" % levels
    for level in reversed(range(levels)):
        body = (b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n'
                b"Content-Type: text/plain\r\n\r\nlevel %d\r\n--b%d\r\n%s\r\n--b%d--\r\n"
                % (level, level, level, level, body, level))
    return b"From: a@example.com\r\nMessage-ID: <deep@x>\r\n" + body


def test_sixty_level_multipart_is_walked_to_the_depth_cap():
    got = _parse(_nested(60))
    assert got.text.startswith("level 0\n\nlevel 1\n\n")
    assert "level 49" in got.text and "level 51" not in got.text


@pytest.mark.parametrize("levels", [150, 3000])
def test_absurd_nesting_is_refused_before_parsing(levels):
    with pytest.raises(UnparseableMail, match="too deep"):
        _parse(_nested(levels))


def test_deeply_nested_forwards_are_unparseable_not_a_crash():
    raw = b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n" * 3000 + b"x"
    with pytest.raises(UnparseableMail, match="nested too deeply"):
        _parse(raw)


def test_five_thousand_parts_are_capped():
    parts = b"".join(b"--p\r\nContent-Type: application/octet-stream\r\n\r\n%d\r\n" % i
                     for i in range(5000))
    raw = _mail("From: a@example.com", "Message-ID: <many@x>",
                'Content-Type: multipart/mixed; boundary="p"', body=parts + b"--p--\r\n")
    got = _parse(raw)
    assert len(got.attachments) == MAX_PARTS - 1  # the root is a part too
    assert got.attachments[0].data == b"0" and got.attachments[-1].data == b"998"
    assert got.attachments[-1].filename == "attachment-999.bin"


def test_huge_header_parameters_do_not_hang():
    # The stdlib splits parameters in quadratic time; values are capped before that.
    raw = _mail("From: a@example.com", "Message-ID: <big@x>",
                'Content-Type: text/plain; name="' + ";" * 500_000 + '"', body=b"x")
    [attachment] = _parse(raw).attachments
    assert attachment.data == b"x"


def test_malformed_parameters_read_as_absent():
    # The stdlib raises on mixed plain and numbered continuations, and on huge numbers.
    raw = _mail(
        "From: a@example.com", "Message-ID: <params@x>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(b"--b\r\nContent-Type: text/plain; charset=utf-8; charset*0=gbk\r\n\r\nhi\r\n"
              b"--b\r\nContent-Type: application/octet-stream; name*" + b"9" * 5000
              + b"=x\r\nContent-Disposition: attachment; filename*=a; filename*0=b\r\n\r\n"
              b"data\r\n--b--\r\n"),
    )
    got = _parse(raw)
    assert got.text == "hi"
    [attachment] = got.attachments
    assert attachment.filename == "attachment-1.bin" and attachment.data == b"data"


def test_many_parts_with_long_parameter_lists_stay_cheap():
    header = b"Content-Type: application/octet-stream; x=\"" + b";" * 8000 + b"\"\r\n\r\n"
    parts = b"".join(b"--p\r\n" + header + b"%d\r\n" % i for i in range(300))
    raw = _mail("From: a@example.com", "Message-ID: <semi@x>",
                'Content-Type: multipart/mixed; boundary="p"', body=parts + b"--p--\r\n")
    got = _parse(raw)
    assert len(got.attachments) == 300 and got.attachments[299].data == b"299"
