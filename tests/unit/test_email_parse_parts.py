"""Email parsing: attachment names, forwarded mail, and caps on MIME nesting, parts and parameters."""

import base64
from email import message_from_bytes, policy

import pytest
from email_parse_support import PNG, _mail, _parse, _sha
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.email import UnparseableMail
from connectors.email.mime import _BOUNDARY, MAX_PARTS


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


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


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"boundary", b"BOUNDARY", b"BoUnDaRy", b"boundary=", b'Boundary="b"', b" = x",
                                 b"boundar", b"oundary=y", b"bboundary=a;", b"=", b'"', b";", b"\r\n", b"\xc4"]),
                max_size=8).map(b"".join))
def test_fewer_than_two_words_boundary_mean_fewer_than_two_declarations(raw):
    # The nesting check returns early on the count, as it would on the declarations it finds.
    lowered = raw.lower()
    if lowered.count(b"boundary") < 2:
        assert len(list(_BOUNDARY.finditer(lowered))) < 2


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
