"""ParsedMessage reads each header field once: the same answers as the stdlib Message, before
and after the fields change."""

import os
from email import policy
from email.header import Header
from email.parser import BytesParser

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.email.message import ParsedMessage, RawPolicy, TolerantMessage
from connectors.email.mime import read_message

DIFFERENTIAL = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")), deadline=None,
                        derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class StockMessage(TolerantMessage):
    """The stdlib Message with the same error handling, and nothing kept between calls."""


def _parse(raw: bytes, factory):
    return BytesParser(policy=RawPolicy(message_factory=factory)).parsebytes(raw)


TYPES = [b"text/plain", b"TEXT/HTML", b"multipart/mixed", b"multipart/alternative", b"multipart/digest",
         b"message/rfc822", b"multipart/report", b"text", b"text/plain/x", b"", b" application/pdf ", b"a/b c"]
PARAM_NAMES = [b"charset", b"CHARSET", b"name", b"Name", b"filename", b"boundary", b"report-type", b"name*",
               b"filename*", b"name*0", b"name*1", b"name*0*", b"filename*1*", b"name*99999", b"x", b"", b"a b"]
# What makes a parameter interesting: quotes, backslashes, comments, RFC 2231 and RFC 2047 pieces,
# separators, folding, 8-bit bytes (surrogate-escaped by the parser), non-ASCII text.
PIECES = [b'"', b"\\", b"\\\"", b"(", b")", b"(c)", b";", b"=", b"'", b"''", b"utf-8''", b"gbk'zh'", b"%E4%BD%A0",
          b"%", b"%zz", b"=?utf-8?b?5L2g5aW9?=", b"=?gbk?q?=C4=E3?=", b" ", b"\t", b"\r\n ", b"a", b"b.pdf",
          b"gbk", "报价.pdf".encode(), b"\x80\xe4", b"\xb1\xa8", b"*", b"/", b",", b"<>"]
OTHER_FIELDS = [b"From", b"X-Loop", b"Precedence", b"content-type", b"CONTENT-DISPOSITION", b"Content-Type",
                b"Subject", b"Content-Transfer-Encoding"]

_value = st.lists(st.sampled_from(PIECES), max_size=6).map(b"".join)


@st.composite
def _param(draw) -> bytes:
    value = draw(_value)
    if draw(st.booleans()):
        value = b'"' + value + b'"'
    sep = draw(st.sampled_from([b"; ", b";", b" ;", b";\r\n\t", b"; ;", b";;"]))
    return sep + draw(st.sampled_from(PARAM_NAMES)) + draw(st.sampled_from([b"=", b" = ", b""])) + value


@st.composite
def _field(draw) -> bytes:
    name = draw(st.sampled_from([b"Content-Type", b"Content-Disposition", *OTHER_FIELDS]))
    if draw(st.integers(0, 9)) == 0:
        value = draw(st.binary(max_size=60)).replace(b"\r", b"").replace(b"\n", b"")
    else:
        head = draw(st.sampled_from(TYPES + [b"attachment", b"inline", b"INLINE", b"bulk"]))
        value = head + b"".join(draw(st.lists(_param(), max_size=5)))
    return name + b": " + value + b"\r\n"


@st.composite
def mails(draw) -> bytes:
    return b"".join(draw(st.lists(_field(), min_size=1, max_size=6))) + b"\r\n--b\r\nX: y\r\n\r\nhello\r\n--b--\r\n"


HEADERS = ["content-type", "Content-Disposition", "from", "x-missing"]
NAMES = ["charset", "name", "filename", "boundary", "report-type", "x", "NAME"]


def answers(msg) -> list:
    """Every question the mail's walk asks of a part, each asked twice."""
    questions = [
        *(lambda m, h=h: m.get(h) for h in HEADERS), lambda m: m.get("x-missing", "none"),
        *(lambda m, h=h: m.get_all(h) for h in HEADERS), *(lambda m, h=h: h in m for h in HEADERS),
        lambda m: m.keys(), lambda m: m.values(), lambda m: len(m),
        lambda m: m.get_content_type(), lambda m: m.get_content_maintype(), lambda m: m.get_content_subtype(),
        lambda m: m.get_content_disposition(), lambda m: m.get_content_charset(), lambda m: m.get_charsets(),
        lambda m: m.get_filename(), lambda m: m.get_boundary(), lambda m: m.is_multipart(),
        lambda m: [(p.get_content_type(), p.get_content_charset(), p.items()) for p in m.walk()],
        lambda m: [type(d) for d in m.defects], lambda m: m.as_bytes(),
        *(lambda m, h=h, u=u: m.get_params([], header=h, unquote=u) for h in HEADERS for u in (True, False)),
        *(lambda m, p=p, h=h, u=u: m.get_param(p, "none", header=h, unquote=u)
          for p in NAMES for h in HEADERS[:2] for u in (True, False)),
        # A kept answer, asked again with another failobj, another spelling or a truthy unquote.
        lambda m: m.get_param("charset"), lambda m: m.get_param("CharSet", []), lambda m: m.get_param("x", 0),
        lambda m: m.get_param("name", "none", "CONTENT-TYPE", 0), lambda m: m.get_param("name", "none", unquote=1),
        lambda m: m.get_param("charset", "none", header="x-missing"), lambda m: m.get_param("charset", header="From"),
        lambda m: [p.get_content_maintype() for p in m.walk()],
    ]
    found = []
    for question in questions * 2:
        try:
            found.append(question(msg))
        except Exception as exc:  # the same exception on both sides is the same answer
            found.append(("raised", type(exc)))
    return found


MUTATIONS = [
    lambda m: m.set_param("charset", "gbk"),
    lambda m: m.set_param("name", "报.pdf", header="Content-Disposition", charset="utf-8"),
    lambda m: m.del_param("charset"),
    lambda m: m.replace_header("Content-Type", "text/html; charset=big5"),
    lambda m: m.__setitem__("Content-Type", "multipart/mixed; boundary=q"),
    lambda m: m.__delitem__("content-type"),
    lambda m: m.set_type("text/html"),
    lambda m: m.set_boundary("zz"),
    lambda m: m.set_default_type("message/rfc822"),
    lambda m: setattr(m, "policy", m.policy.clone(linesep="\r\n")),
    lambda m: m._headers.__setitem__(0, (m._headers[0][0], "text/calendar; charset=koi8-r")),
    lambda m: m._headers.reverse(),
    lambda m: setattr(m, "policy", policy.default),
    lambda m: m.__setitem__("Content-Type", Header("text/plain; charset=gbk")),
    lambda m: m.get("content-type").append("; name=x.pdf"),  # a Header changes in place
    lambda m: m.as_bytes(),  # the generator sets a missing boundary and swaps the policy meanwhile
]


@DIFFERENTIAL
@given(mails(), st.lists(st.sampled_from(range(len(MUTATIONS))), max_size=3))
@example(b"Content-Type: text/plain; charset*=utf-8''%E4%BD%A0; name=\"a\\\"b\"\r\n\r\nx", [0, 3])
@example(b"Content-Type: text/plain; name=a; name*0=b\r\n\r\nx", [])  # the stdlib raises TypeError
@example(b"Content-Disposition: attachment; filename*99999999999999999999=a\r\n\r\nx", [1])
@example(b"X: y\r\n\r\nx", [8, 4, 5])
@example(b"X: y\r\n\r\nx", [13, 14])
@example(b"Content-Type: text/plain; charset=gbk\r\n\r\nx", [12, 0])
def test_same_answers_as_the_stdlib_message(raw, mutations):
    stock, parsed = _parse(raw, StockMessage), _parse(raw, ParsedMessage)
    assert isinstance(parsed, ParsedMessage)
    assert answers(parsed) == answers(stock)
    for n in mutations:
        outcomes = []
        for msg in (stock, parsed):
            try:
                MUTATIONS[n](msg)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
        assert answers(parsed) == answers(stock)


def test_a_changed_field_is_read_again():
    msg = read_message(b"From: a@example.cn\r\nContent-Type: text/plain; charset=gbk\r\n\r\nhi")
    assert (msg.get_content_charset(), msg.get_content_type()) == ("gbk", "text/plain")
    msg.set_param("charset", "big5")
    msg.set_type("text/html")
    assert (msg.get_content_charset(), msg.get_content_type()) == ("big5", "text/html")
    del msg["Content-Type"]
    msg.set_default_type("message/rfc822")
    assert (msg.get_content_charset(), msg.get_content_type(), "content-type" in msg) == (None, "message/rfc822", False)


def test_the_parameter_list_handed_out_is_the_callers_own():
    msg = read_message(b"From: a@example.cn\r\nContent-Type: text/plain; charset=gbk\r\n\r\nhi")
    msg.get_params(unquote=False).clear()
    assert msg.get_params(unquote=False) == [("text/plain", ""), ("charset", '"gbk"')]


def test_parameters_kept_for_every_mail_stay_each_mails_own():
    raw = b"From: a@example.cn\r\nContent-Type: text/plain; charset=gbk; name=a.txt\r\n\r\nhi"
    first, second = read_message(raw), read_message(raw)
    first.get_params(unquote=False).clear()
    first.set_param("charset", "big5")
    assert first.get_param("charset") == "big5"
    assert second.get_params() == [("text/plain", ""), ("charset", "gbk"), ("name", "a.txt")]
    assert read_message(raw).get_param("charset") == "gbk"
