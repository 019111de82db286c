"""Status-page tokens, the link line under replies, the page's language choice and the portal parse."""

import time

import pytest

from connectors.portal import CHANNEL
from connectors.portal.message import CONTENT_TYPE, PortalMessage
from core.envelope import Envelope
from core.errors import PermanentError
from portal.i18n import choose
from ticket_service.portal_links import PortalLinks, read, with_link


class Ticket:
    def __init__(self, id: int, generation: int = 0) -> None:
        self.id, self.portal_generation = id, generation


LINKS = PortalLinks("unit-secret", "https://help.example.com/", ttl_s=3600)


def _claim(link: str):
    return read(link.rsplit("/", 1)[1])


def test_a_link_verifies_for_its_ticket_generation_and_until_it_expires():
    link = LINKS.portal_link(7, Ticket(42, 3), issued_at=1_000_000)
    assert link.startswith("https://help.example.com/portal/7.2a.")
    claim = _claim(link)
    assert (claim.tenant_id, claim.ticket_id, claim.expires) == (7, 42, 1_003_600)
    assert LINKS.verify(claim, 3, now=1_003_599)
    assert not LINKS.verify(claim, 3, now=1_003_600)  # expired
    assert not LINKS.verify(claim, 4, now=1_000_001)  # revoked: the generation moved on


def test_a_link_does_not_verify_under_another_key_tenant_or_ticket():
    claim = _claim(LINKS.portal_link(7, Ticket(42), issued_at=time.time()))
    assert not PortalLinks("other-secret", "").verify(claim, 0)
    for tenant, ticket in ((8, 42), (7, 43)):
        forged = read(f"{tenant:x}.{ticket:x}.{claim.expires:x}.{claim.mac}")
        assert not LINKS.verify(forged, 0)


@pytest.mark.parametrize("token", ["", "7.2a.f", "7.2a.f." + "A" * 42, "7.2a.f." + "A" * 44, "G.2a.f." + "A" * 43,
                                   "7.2a.f." + "A" * 42 + "=", "../etc/passwd"])
def test_malformed_tokens_are_not_read(token):
    assert read(token) is None


def test_the_link_line_under_email_and_chat_replies():
    url = "https://help.example.com/portal/x"
    text, html = with_link("email", "Done.\n", "<p>Done.</p>", url, "zh")
    assert text == f"Done.\n\n-- \n查看处理进度或补充信息： {url}"
    assert html == f'<p>Done.</p>\n<p>查看处理进度或补充信息： <a href="{url}">{url}</a></p>'
    assert with_link("wechat", "Done.", "", url, None) == (f"Done.\n\nFollow this request or add to it: {url}", "")


@pytest.mark.parametrize(("asked", "header", "lang"), [
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"), (None, "en-US,zh;q=0.5", "en"), (None, "fr, zh-TW;q=0.3", "zh"),
    (None, "", "en"), (None, "zh;q=0", "en"), ("en", "zh-CN", "en"), ("xx", "zh-CN", "zh"),
])
def test_the_page_language(asked, header, lang):
    assert choose(asked, header) == lang


def test_parse_reads_back_what_the_page_wrote_and_refuses_anything_else():
    msg = PortalMessage(ticket_id=5, reply_token="sb-5-abcdefghijklmnop", submission="s" * 22,
                        sender=("email", "", "li@example.cn", "Li"), text="更新", filename="a.txt",
                        content_type="text/plain", data=b"\x00\x01")
    env = Envelope(tenant="acme", channel="portal", account="9", payload=msg.to_bytes(), content_type=CONTENT_TYPE)
    [inbound] = CHANNEL.parse(env)
    assert inbound.dedup_key == "portal:5:" + "s" * 22
    assert (inbound.sender.kind, inbound.sender.value, inbound.sender.name) == ("email", "li@example.cn", "Li")
    assert inbound.text == "更新" and inbound.attachments[0].data == b"\x00\x01"
    assert CHANNEL.reply_token_places(inbound) == ["sb-5-abcdefghijklmnop"]
    for bad in (b"not json", b'{"v": 2}', b'{"v": 1, "ticket_id": 5}'):
        with pytest.raises(PermanentError):
            CHANNEL.parse(Envelope(tenant="acme", channel="portal", account="9", payload=bad))
