"""Every mail of the corpus parses, quickly and to the subject, sender, text and files expected."""

import pytest
from corpus_email import expected, own_files, shared_files

from connectors.email import UnparseableMail, parse
from core.envelope import Envelope

EXPECTED = expected()


def _parse(raw: bytes):
    [inbound] = parse(Envelope(tenant="t", channel="email", account="1", payload=raw,
                               content_type="message/rfc822"))
    return inbound


def test_every_corpus_mail_has_expectations_and_every_expectation_a_mail():
    assert sorted(p.name for p in own_files()) == sorted(EXPECTED)


@pytest.mark.timeout(10)  # a stall on one mail is a failure, not a slow test
@pytest.mark.parametrize("path", own_files() + shared_files(), ids=lambda p: p.name)
def test_corpus_mail_parses_as_expected(path):
    want = EXPECTED.get(path.name) if path.parent == own_files()[0].parent else None
    if want is None:
        # The shared corpus carries no expectations: no crash and no stall is the bar.
        try:
            got = _parse(path.read_bytes())
        except UnparseableMail:
            return
        assert isinstance(got.subject, str) and isinstance(got.text, str)
        return
    got = _parse(path.read_bytes())
    assert got.subject == want["subject"]
    assert got.sender.value == want["sender"]
    assert want["text"] in got.text
    assert [a.filename for a in got.attachments] == want["attachments"]
    assert got.auto_reason == want["auto"]
    assert "\ufffd" not in got.subject + got.text  # no charset fell back to replacement characters
    if "html_contains" in want:
        assert want["html_contains"] in got.html and "<script" not in got.html
