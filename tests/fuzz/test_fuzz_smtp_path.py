"""MAIL FROM / RCPT TO paths: the server's quick reading of <local@domain> gives exactly what
aiosmtpd's own parser gives, for plain paths and for every odd form around them."""

from __future__ import annotations

from aiosmtpd.smtp import SMTP
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from connectors.email.smtp import CountingSMTP

_odd = st.sampled_from(["a", "Z", "0", ".", "..", "-", "_", "+", "é", "中", " ", "\t", "(", ")", '"', "\\", "[",
                        "]", ":", ",", ";", "<", ">", "@", "!", "=", "'"])
_part = st.lists(_odd, min_size=0, max_size=8).map("".join)
_after = st.sampled_from(["", " ", "  ", "\t", " SIZE=1024", " size=5 BODY=8BITMIME SMTPUTF8", "SIZE=1", " (note) SIZE=1",
                          "(note)", " \t(x)", " NOTIFY=NEVER ", ">"])


def _path(local: str, domain: str, after: str) -> str:
    return f"<{local}@{domain}>{after}"


def _reading(cls, arg: str, limit: int) -> tuple:
    server = cls.__new__(cls)  # only the parser is exercised: no connection, no handler
    server.local_part_limit = limit
    try:
        return cls._getaddr(server, arg)
    except Exception as exc:  # the stdlib parser fails on some junk ('"'): then both fail alike
        return ("raised", type(exc))


@FUZZ
@given(local=st.one_of(st.sampled_from(["help", "zhang.wei", "a+tag", "x_y-z", "o'brien", "longer.local.part"]), _part),
       domain=st.one_of(st.sampled_from(["acme.test", "example.cn", "a-b.c.d", "localhost"]), _part),
       after=_after, limit=st.sampled_from([0, 5, 64]))
def test_a_path_reads_as_aiosmtpd_reads_it(local, domain, after, limit):
    arg = _path(local, domain, after)
    assert _reading(CountingSMTP, arg, limit) == _reading(SMTP, arg, limit)


@FUZZ
@given(arg=st.lists(_odd, max_size=20).map("".join), limit=st.sampled_from([0, 5]))
def test_any_argument_reads_as_aiosmtpd_reads_it(arg, limit):
    assert _reading(CountingSMTP, arg, limit) == _reading(SMTP, arg, limit)


def test_plain_paths_are_read_with_their_parameters():
    assert _reading(CountingSMTP, "<zhang.wei@example.cn> SIZE=1024 BODY=8BITMIME", 0) == (
        "zhang.wei@example.cn", "SIZE=1024 BODY=8BITMIME")
    assert _reading(CountingSMTP, "<a.very.long.local.part@acme.test>", 5) == (None, None)  # RFC 5321 §4.5.3.1.1
