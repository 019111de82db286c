"""WeChat XML: the quick path reads WeChat's shape exactly as expat does, and leaves the rest to it."""

import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.wechat.xml import BadXml, expat_fields, fields, quick_fields

# Five hundred documents per run; FUZZ_EXAMPLES=N runs N, with a new seed each time.
DIFFERENTIAL = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")), deadline=None,
                        derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TEXT_MESSAGE = ("<xml><ToUserName><![CDATA[gh_acme]]></ToUserName><FromUserName><![CDATA[oFWmSwFGLk8pc-a6]]>"
                "</FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                "<Content><![CDATA[订单 42 什么时候发货？]]></Content><MsgId>7000000042</MsgId></xml>")
TEXT_FIELDS = {"ToUserName": "gh_acme", "FromUserName": "oFWmSwFGLk8pc-a6", "CreateTime": "1700000000",
               "MsgType": "text", "Content": "订单 42 什么时候发货？", "MsgId": "7000000042"}

NAMES = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Encrypt", "Event",
         "Location_X", "A.b-c", "_x", "xml", "xmlns"]
HOSTILE_NAMES = ["a:b", "xmlns:x", "Ä", "名字", "1a", "-a", ".a", "a}b", "A B", ""]
# What makes XML interesting: markup characters, line ends, entities, CDATA's end, characters
# XML refuses (C0 controls, U+FFFE/U+FFFF, a lone surrogate), white space str.strip knows.
PIECES = ["]]>", "]", "]]", "]>", "<", ">", "&", "&amp;", "&lt;", "&#20;", "&#x41;", "&bogus;", "<![CDATA[", "<b>",
          "</b>", "<!-- c -->", "<?pi x?>", "\r", "\n", "\r\n", "\r\r\n", "\t", " ", "\x00", "\x01", "\x0b", "\x0c",
          "\x1f", "\x7f", "\x85", "\xa0", "\u3000", "\u2028", "\ufeff", "\ufffe", "\uffff", "\ufdd0", "\ud800",
          "\U0001fffe", "😀", "订单", "'", '"']
SPACES = [" ", "\t", "\n", "\r\n", "\r"]
# Text as WeChat sends it: any character XML allows but the markup ones, line ends included.
ordinary = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="<&")
                   | st.sampled_from(" \t\n\r"), max_size=12)
space = st.lists(st.sampled_from(SPACES), max_size=3).map("".join)
# A document is WeChat's shape, or WeChat's shape with one thing wrong in one place.
PLACES = ["declaration", "root", "child", "between", "value", "insert", "encoding"]


@st.composite
def values(draw, hostile: bool) -> str:
    pieces = st.one_of(ordinary, st.sampled_from(PIECES)) if hostile else ordinary
    return "".join(draw(st.lists(pieces, max_size=4)))


@st.composite
def child(draw, hostile: bool, value_hostile: bool) -> str:
    name = draw(st.sampled_from(NAMES + HOSTILE_NAMES if hostile else NAMES))
    value, other = draw(values(value_hostile)), draw(values(value_hostile))
    ws, ws2 = draw(space), draw(space)
    usual = [f"<{name}>{value}</{name}>", f"<{name}><![CDATA[{value}]]></{name}>",
             f"<{name}>{ws}<![CDATA[{value}]]>{ws2}</{name}>", f"<{name}/>", f"<{name}{ws}/>",
             f"<{name}></{name}>", f"<{name}{ws}>{value}</{name}{ws2}>"]
    unusual = [
        f"<{name}><![CDATA[{value}]]><![CDATA[{other}]]></{name}>",  # CDATA in two sections
        f"<{name}>{value}<![CDATA[{other}]]></{name}>", f"<{name}><![CDATA[{value}]]>{other}</{name}>",
        f"<{name}>{value}<b>{other}</b>{value}</{name}>",  # nested: the text before the child
        f'<{name} a="{value}">{other}</{name}>', f"<{name} xmlns='urn:x'>{value}</{name}>",
        f"<{name}>{value}</{name}x>", f"<{name}>{value}", f"<{name}>{value}</{name}></{name}>"]
    return draw(st.sampled_from(unusual if hostile else usual))


@st.composite
def documents(draw) -> bytes | str:
    wrong = draw(st.sampled_from(["nowhere"] * len(PLACES) + PLACES))
    declaration = draw(st.sampled_from(
        ["", '<?xml version="1.0"?>', "<?xml version='1.0' encoding='UTF-8'?>",
         '<?xml  version = "1.0"\nencoding="Utf-8" ?>\r\n'] if wrong != "declaration" else
        ['<?xml version="1.1"?>', '<?xml version="1.0" standalone="yes"?>', '<?xml version="1.0" encoding="gbk"?>',
         '<?xml version="1.0" encoding="ISO-8859-1"?>', "<?xml?>", ' <?xml version="1.0"?>', "\ufeff",
         '\ufeff<?xml version="1.0"?>', '<!DOCTYPE xml [<!ENTITY e "x">]>',
         '<?xml version="1.0"?><!DOCTYPE xml SYSTEM "file:///etc/passwd">', "<!-- before -->", "<?pi before?>"]))
    opening, closing = "<xml>", "</xml>"
    if wrong == "root":
        opening, closing = draw(st.sampled_from([
            ("<XML>", "</XML>"), ("<x>", "</x>"), ("<a:xml>", "</a:xml>"), ("<xml >", "</xml >"), ("<xml\n>", "</xml>"),
            ("<xml a='1'>", "</xml>"), ("<xml xmlns='urn:x'>", "</xml>"), ("<xml/>", ""), ("<xml>", ""),
            ("<xml>", "</x>"), ("<xml>", "</xml>junk"), ("<xml>", "</xml><!-- after -->"), ("<xml>", "</xml><xml></xml>")]))
    children = draw(st.lists(child(False, wrong == "value"), min_size=1, max_size=8))
    if wrong == "child":
        children.insert(draw(st.integers(0, len(children))), draw(child(True, True)))
    if wrong == "between":
        children.insert(draw(st.integers(0, len(children))), draw(st.sampled_from([" junk ", "&amp;", "<!-- c -->", "<?pi?>"])))
    body = "".join(draw(space) + item for item in children)
    doc = declaration + opening + body + draw(space) + closing + draw(space)
    if wrong == "insert":  # one more character somewhere
        at = draw(st.integers(0, len(doc)))
        doc = doc[:at] + draw(st.sampled_from(PIECES)) + doc[at:]
    if wrong != "encoding":
        return doc if draw(st.booleans()) else doc.encode("utf-8", "surrogatepass")
    return doc.encode(draw(st.sampled_from(["utf-16", "utf-16-be", "latin-1", "gbk", "utf-8-sig"])), "replace")


def _outcome(parse, doc):
    try:
        return list(parse(doc).items())  # order too: the dict is the same, built the same way
    except Exception as exc:  # noqa: BLE001 - the exact refusal, whatever it is, must be kept
        return type(exc), str(exc)


@DIFFERENTIAL
@given(documents())
@example(TEXT_MESSAGE)
@example(TEXT_MESSAGE.encode())
def test_quick_path_agrees_with_expat_or_stands_aside(doc):
    expected = _outcome(expat_fields, doc)
    quick = quick_fields(doc)
    if quick is not None:
        assert list(quick.items()) == expected
    assert _outcome(fields, doc) == expected


@pytest.mark.parametrize("doc, expected", [
    (TEXT_MESSAGE, TEXT_FIELDS),
    ('<?xml version="1.0" encoding="UTF-8"?>\n<xml>\n <A> 1 </A>\n <B><![CDATA[ two ]]></B>\n</xml>\n',
     {"A": "1", "B": "two"}),
    # Line ends become \n, in CDATA too; then the text is stripped.
    ("<xml><A>a\r\nb\rc\r</A><B><![CDATA[\r\nx\r\r\ny]]></B></xml>", {"A": "a\nb\nc", "B": "x\n\ny"}),
    ("<xml><A/><B></B><C><![CDATA[]]></C><D >  </D ></xml>", {"A": "", "B": "", "C": "", "D": ""}),
    ("<xml><A>1</A><B>2</B><A>3</A></xml>", {"A": "3", "B": "2"}),  # the last of a duplicate
    ("<xml><A>x ] ]] > ]>y</A><B><![CDATA[<b>&amp;] ]] ]>]]></B></xml>", {"A": "x ] ]] > ]>y", "B": "<b>&amp;] ]] ]>"}),
    ("<xml><A>\u3000\xa0x\x85\u2028</A><B>😀\ufdd0</B></xml>", {"A": "x", "B": "😀\ufdd0"}),
    ("<xml></xml>", {}),
])
def test_quick_path_reads_wechat_documents(doc, expected):
    for form in (doc, doc.encode()):
        assert quick_fields(form) == expected
        assert expat_fields(form) == expected


@pytest.mark.parametrize("doc", [
    "<xml><A>&amp;</A></xml>", "<xml><A>a<b>c</b></A></xml>", '<xml><A a="1">x</A></xml>', "<xml><!-- c --><A>1</A></xml>",
    "<xml><?pi?><A>1</A></xml>", '<!DOCTYPE xml [<!ENTITY e "x">]><xml><A>&e;</A></xml>',
    "<xml><A><![CDATA[a]]><![CDATA[b]]></A></xml>", "<xml><A>1</B></xml>", "<xml><a:b>1</a:b></xml>",
    "<xml xmlns='urn:x'><A>1</A></xml>", "\ufeff<xml><A>1</A></xml>", '<?xml version="1.0" encoding="gbk"?><xml/>',
    "<xml><A>x]]>y</A></xml>", "<xml><A><![CDATA[x]]>]]></A></xml>", "<xml><A>\x01</A></xml>", "<xml><A>\ufffe</A></xml>",
    "<xml><名>1</名></xml>", "<xml/>", "<other><A>1</A></other>", "<xml><A>1</A></xml><xml></xml>", "<xml><A>1</A>",
])
def test_anything_else_is_left_to_expat(doc):
    assert quick_fields(doc) is None
    assert _outcome(fields, doc) == _outcome(expat_fields, doc)


def test_refusals_keep_their_words():
    with pytest.raises(BadXml, match="^malformed XML: a DOCTYPE not allowed$"):
        fields(b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>')
    with pytest.raises(BadXml, match=r"^malformed XML: not well-formed \(invalid token\): line 1, column 8$"):
        fields(b"<xml><A>\xff</A></xml>")
    with pytest.raises(BadXml, match="^root element is <other>, not <xml>$"):
        fields(b"<other><A>1</A></other>")
    # expat reads no multi-byte encoding but UTF-8/16: a push declaring GBK is malformed, not a crash.
    with pytest.raises(BadXml, match="^malformed XML: multi-byte encodings are not supported$"):
        fields('<?xml version="1.0" encoding="gbk"?><xml><A>订单</A></xml>'.encode("gbk"))


def test_bytes_that_are_not_utf8_or_a_lone_surrogate_go_to_expat():
    assert quick_fields("<xml><A>é</A></xml>".encode("latin-1")) is None
    assert quick_fields("<xml><A>\ud800</A></xml>") is None
    with pytest.raises(BadXml, match="^malformed XML: 'utf-8' codec can't encode"):
        fields("<xml><A>\ud800</A></xml>")
