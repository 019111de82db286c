"""The threading trail and a ticket's Cc list stay bounded, whatever a message carries."""

from connectors.inbound import Inbound, Sender
from normalizer.threading import CC_MAX, TRAIL_MAX, WHY_MAX, ThreadMatch, cc_addresses, merged_cc


def _mail(cc) -> Inbound:
    return Inbound(dedup_key="m1", sender=Sender("email", "zhang.wei@example.cn"), headers={"cc": cc})


def test_trail_keeps_at_most_its_entries_and_cuts_long_reasons():
    match = ThreadMatch()
    for n in range(TRAIL_MAX + 3):
        match.note(f"rule{n}", n == 0, "x" * (WHY_MAX + 50))
    assert len(match.trail) == TRAIL_MAX
    assert match.trail[0] == ["rule0", True, "x" * WHY_MAX]
    assert match.trail[-1][0] == f"rule{TRAIL_MAX - 1}"


def test_cc_addresses_drop_the_sender_repeats_and_non_addresses():
    cc = ["li.na@example.cn", "zhang.wei@example.cn", "li.na@example.cn", "undisclosed-recipients", 7, "wang@x.cn"]
    assert cc_addresses(_mail(cc)) == ["li.na@example.cn", "wang@x.cn"]
    assert cc_addresses(_mail("li.na@example.cn")) == []  # parse always gives a list; anything else is not Cc
    assert cc_addresses(Inbound(dedup_key="c1", sender=Sender("wechat", "openid"))) == []


def test_cc_list_grows_only_with_new_addresses_and_stops_at_its_bound():
    assert merged_cc(None, _mail(["a@x.cn"])) == ["a@x.cn"]
    assert merged_cc(["a@x.cn"], _mail(["a@x.cn"])) is None  # nothing new: no write
    many = [f"p{n}@x.cn" for n in range(CC_MAX + 10)]
    assert merged_cc(["a@x.cn"], _mail(many)) == ["a@x.cn", *many[: CC_MAX - 1]]
    assert merged_cc(many[:CC_MAX], _mail(["late@x.cn"])) is None  # full: later addresses are not kept
