"""Address fields: the plain forms read without the stdlib's parser give the stdlib's pairs, and
everything else is left to it."""

import os
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.email import addresses

DIFFERENTIAL = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000")), deadline=None,
                        derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# What makes an address list interesting: RFC 5322 specials, quotes, backslashes, comments,
# RFC 2047 words, folding, white space the stdlib does not skip, 8-bit bytes the parser
# surrogate-escaped, non-ASCII text.
NAME_PIECES = ["Li", "Na", "J.", ".", "Customer 7", "=?utf-8?b?5byg5LiJ?=", "=?gbk?q?=D5=C5_=C8=FD?=", "张三",
               "\udce5\udcbc\udca0", "a@b", '"', "\\", '\\"', "(", ")", "(c)", ",", "<", ">", ":", ";", "[", "]",
               "\u3000", "\x0b", "\x0c", "\xa0", "'", "?", "=", "\x00", "😀"]
SPACES = ["", " ", "  ", "\t", "\r\n ", "\n", "\r", " \t "]
LOCALS = ["a", "li.na", "a+b", "a_b-c", "a..b", ".a", "a.", '"a b"', '"a"', "a\\b", "张", "\udce4\udcb8", "", "@", "a b",
          "a(c)", "a,b"]
DOMAINS = ["example.cn", "b", "[1.2.3.4]", "b..c", "b.", ".b", "", "例子.中国", "a@b", "b c", "b(c)", "\udce4.cn", "B.CN"]

_space = st.sampled_from(SPACES)
_name = st.lists(st.one_of(st.sampled_from(NAME_PIECES), _space), max_size=6).map("".join)
_addr = st.builds(lambda lo, at, do: lo + at + do, st.sampled_from(LOCALS), st.sampled_from(["@", "", "@@", " @ "]),
                  st.sampled_from(DOMAINS))


@st.composite
def element(draw) -> str:
    before, after = draw(_space), draw(_space)
    form = draw(st.sampled_from(["bare", "angle", "words", "quoted", "group", "route", "text", "empty"]))
    if form == "bare":
        body = draw(_addr)
    elif form == "angle":
        body = "<" + draw(_addr) + ">"
    elif form == "words":
        body = draw(_name) + draw(_space) + "<" + draw(_addr) + ">"
    elif form == "quoted":
        body = '"' + draw(_name) + '"' + draw(_space) + "<" + draw(_addr) + ">"
    elif form == "group":
        body = draw(_name) + ":" + draw(_addr) + draw(st.sampled_from([";", ""]))
    elif form == "route":
        body = "<@relay.cn:" + draw(_addr) + ">"
    elif form == "text":
        body = draw(st.text(alphabet=st.sampled_from(list('<>@,;:."()[]\\ \t\r\nab张\udce4=?')), max_size=20))
    else:
        body = ""
    return before + body + after


_field = st.lists(element(), min_size=1, max_size=4).map(",".join)

PLAIN_WORDS = ["Li", "Na", "J.", "Customer", "7", "=?utf-8?b?5byg5LiJ?=", "=?gbk?q?=D5=C5_=C8=FD?=", "张三",
               "\udce5\udcbc\udca0", "\u3000", "\x0b", "'", "?", "=", "😀", "a.b"]
PLAIN_ADDRS = ["a@example.cn", "li.na@mail.example.cn", "a+b@b", "张@例子.中国", "\udce4\udcb8@x.cn", "A_B-c@B.CN"]
HOSTILE = ['"', "\\", "(", ")", ",", "<", ">", "@", ":", ";", "[", "]", ".", " ", "\r", "\n", "\t", ""]


@st.composite
def near_plain(draw) -> list[str]:
    """Plain forms, each field with at most one hostile character put anywhere in it."""
    def plain(form, words, quoted, addr, before, after) -> str:
        name = " ".join(words)
        body = {"bare": addr, "angle": f"<{addr}>", "words": f"{name} <{addr}>", "quoted": f'"{name}" <{addr}>'}[form]
        return before + body + after
    one = st.builds(plain, st.sampled_from(["bare", "angle", "words", "quoted"]),
                    st.lists(st.sampled_from(PLAIN_WORDS), min_size=1, max_size=3), st.booleans(),
                    st.sampled_from(PLAIN_ADDRS), _space, _space)
    fields = draw(st.lists(st.lists(one, min_size=1, max_size=3).map(",".join), min_size=1, max_size=3))
    n = draw(st.integers(0, len(fields) - 1))
    at = draw(st.integers(0, len(fields[n])))
    fields[n] = fields[n][:at] + draw(st.one_of(st.just(""), st.sampled_from(HOSTILE))) + fields[n][at:]
    return fields


def _read(read, values):
    try:
        return read(values)
    except Exception as exc:  # the same exception on both sides is the same answer
        return ("raised", type(exc))


@DIFFERENTIAL
@given(st.lists(_field, max_size=3))
@example(["Customer 7 <c7@example.cn>"])
@example(["a@b, "])  # a trailing comma reads as one more, empty, pair
@example(["", "a@b"])
@example(["  "])
@example(['"a, b" <x@y.cn>'])
@example(["a@b c"])  # the stdlib joins the domain's words: a@bc
@example(["Li\u3000Na <li@example.cn>"])  # U+3000 is not white space to the stdlib
@example(["=?utf-8?q?a.b?= <x@y.cn>"])
def test_same_pairs_as_the_stdlib(values):
    quick = addresses.quick(values)
    stock = _read(getaddresses, values)
    assert quick is None or quick == stock
    assert _read(addresses.parse, values) == stock


@DIFFERENTIAL
@given(near_plain())
def test_plain_forms_with_one_hostile_character_read_as_the_stdlib_reads_them(values):
    quick = addresses.quick(values)
    assert quick is None or quick == getaddresses(values)


@pytest.mark.parametrize("values, pairs", [
    (["c7@example.cn"], [("", "c7@example.cn")]),
    (["<c7@example.cn>"], [("", "c7@example.cn")]),
    (["Customer  7\r\n\t<c7@example.cn>"], [("Customer 7", "c7@example.cn")]),
    (['"Li,Na"<li@example.cn>'.replace(",", " ")], [("Li Na", "li@example.cn")]),
    (['"张 三" <zs@example.cn>'], [("张 三", "zs@example.cn")]),
    (["=?utf-8?b?5byg5LiJ?= <zs@example.cn>"], [("=?utf-8?b?5byg5LiJ?=", "zs@example.cn")]),
    (["J. Smith <j.smith@mail.example.cn>, a@b.cn", "<x@y.cn>"],
     [("J. Smith", "j.smith@mail.example.cn"), ("", "a@b.cn"), ("", "x@y.cn")]),
])
def test_the_plain_forms_are_read_here(values, pairs):
    assert addresses.quick(values) == pairs == getaddresses(values)


@pytest.mark.parametrize("value", [
    '"Li, Na" <li@example.cn>', "li@example.cn (Li Na)", '"a\\"b" <x@y.cn>', "<@relay.cn:x@y.cn>", "x@[1.2.3.4]",
    "Friends: a@b, c@d;", "a@b,", "a@b, , c@d", "", " ", "a@b.", "Li <>", "a@b c", '"Li" Na <li@example.cn>',
])
def test_anything_else_is_left_to_the_stdlib(value):
    assert addresses.quick([value]) is None
    assert addresses.parse([value]) == getaddresses([value])
