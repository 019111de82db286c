"""Email parsing: body charsets (declared, mislabelled, undeclared), HTML and alternatives."""

import base64
from email.message import EmailMessage

import pytest
from email_parse_support import PNG, _mail, _parse, _sha

CHINESE = ("您好，我在贵公司网站上购买的商品已经过了一周还没有收到，订单号是二零二四零三一五。"
           "请尽快帮我查询物流状态，如果无法送达请安排退款。谢谢您的帮助！")


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
