import base64

import pytest

from connectors.email.charsets import codecs_for, decode_bytes, decode_header_value, unescape_8bit

# Long enough for detection to be sure (short CJK runs are ambiguous between codecs).
CHINESE = ("您好，我在贵公司网站上购买的商品已经过了一周还没有收到，订单号是二零二四零三一五。"
           "请尽快帮我查询物流状态，如果无法送达请安排退款。谢谢您的帮助！")


def _b64_word(charset: str, text: str, codec: str | None = None) -> str:
    encoded = base64.b64encode(text.encode(codec or charset)).decode("ascii")
    return f"=?{charset}?B?{encoded}?="


@pytest.mark.parametrize(
    "declared, expected",
    [
        ("gb2312", ("gb18030",)),
        ('"GBK"', ("gb18030",)),
        ("x-gbk", ("gb18030",)),
        ("cp936", ("gb18030",)),
        ("big5", ("big5hkscs", "cp950")),
        ("x-big5", ("big5hkscs", "cp950")),
        ("ks_c_5601-1987", ("cp949",)),
        ("iso-8859-1", ("cp1252", "latin-1")),
        ("UTF-8*en", ("utf-8",)),
        ("koi8-r", ("koi8-r",)),
        ("windows-1251", ("cp1251",)),
        ("iso-2022-jp", ("iso2022_jp_2", "iso2022_jp_ext")),
        ("unknown-8bit", ()),
        ("x-unknown", ()),
        ("x-no-such-charset", ()),
        ("base64", ()),  # a bytes codec, not a charset
        ("unicode_escape", ()),  # would rewrite \\u sequences in the text
        (None, ()),
    ],
)
def test_declared_names_map_to_the_codec_that_decodes_them(declared, expected):
    assert codecs_for(declared) == expected


def test_gb2312_label_decodes_gbk_only_character():
    # "镕" (0xE946) is GBK, not GB2312, yet mailers label such text gb2312.
    data = "朱镕基总理".encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("gb2312")
    assert decode_bytes(data, "gb2312") == "朱镕基总理"


def test_big5_label_decodes_hkscs_character():
    # "㗎" is in Big5-HKSCS only (0x9DEE).
    data = "係㗎，唔該".encode("big5hkscs")
    assert decode_bytes(data, "big5") == "係㗎，唔該"


def test_iso_8859_1_label_is_read_as_windows_1252():
    # WHATWG Encoding: 0x80-0x9F are Windows-1252 characters, not C1 controls.
    assert decode_bytes(b"caf\xe9 \x80 \x93ok\x94", "iso-8859-1") == "café € “ok”"


def test_koi8_r_and_windows_1251():
    text = "Здравствуйте, заказ не пришёл"
    assert decode_bytes(text.encode("koi8-r"), "KOI8-R") == text
    assert decode_bytes(text.encode("cp1251"), "windows-1251") == text


def test_gbk_bytes_under_wrong_or_unknown_label_are_detected():
    data = CHINESE.encode("gbk")
    for declared in ("us-ascii", "utf-8", "unknown-8bit", "x-bogus", None):
        assert decode_bytes(data, declared) == CHINESE, declared


def test_undeclared_utf8_and_bom():
    assert decode_bytes("Grüße 你好".encode(), None) == "Grüße 你好"
    assert decode_bytes(b"\xef\xbb\xbfhi", "utf-8") == "hi"
    assert decode_bytes(b"", "gbk") == ""


def test_undeclared_iso_2022_jp_is_recognised_by_its_escapes():
    assert decode_bytes("こんにちは".encode("iso2022_jp"), None) == "こんにちは"


def test_undecodable_bytes_never_raise():
    text = decode_bytes(b"\xff\xfe\x00\xd8" * 3 + b"\x81", "utf-16-le")
    assert isinstance(text, str) and text.encode("utf-8")


def test_adjacent_encoded_words_join_split_characters():
    # "测" and "试" each split over two words; RFC 2047 §6.2 drops the space between words.
    raw = "=?utf-8?B?5rWL?==?utf-8?B?6K+V?=  =?utf-8?Q?=E9=82=AE?=\r\n =?utf-8?q?_ok?="
    assert decode_header_value(raw) == "测试邮 ok"


def test_encoded_words_in_cjk_cyrillic_and_japanese_charsets():
    assert decode_header_value(_b64_word("gbk", "测试邮件")) == "测试邮件"
    assert decode_header_value(_b64_word("gb2312", "朱镕基", "gbk")) == "朱镕基"
    assert decode_header_value("Re: " + _b64_word("koi8-r", "Заказ")) == "Re: Заказ"
    assert decode_header_value(_b64_word("ISO-2022-JP", "テスト", "iso2022_jp")) == "テスト"
    assert decode_header_value("=?UTF-8*en?Q?caf=C3=A9?=") == "café"


def test_raw_8bit_header_uses_utf8_then_the_fallback_charset():
    # The stdlib BytesParser hands raw 8-bit header bytes over surrogate-escaped.
    gbk = "关于订单的问题".encode("gbk").decode("ascii", "surrogateescape")
    assert decode_header_value(gbk, "gb2312") == "关于订单的问题"
    utf8 = "关于订单".encode().decode("ascii", "surrogateescape")
    assert decode_header_value(utf8, "gbk") == "关于订单"
    assert decode_header_value("Re: 订单".encode("gbk"), "gbk") == "Re: 订单"
    assert unescape_8bit(utf8) == "关于订单"


def test_malformed_encoded_word_and_backslashes_are_kept_as_text():
    assert decode_header_value("=?utf-8?B?a?=") == "=?utf-8?B?a?="
    assert decode_header_value(r"C:\users\new =?utf-8?q?x?=") == r"C:\users\new x"
