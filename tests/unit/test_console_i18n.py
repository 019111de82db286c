"""The console's catalogue covers every string its templates use, in both languages; language
choice, local times and redirect targets."""

import re
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from console import i18n, sla
from console.actions import parse_tags
from console.inbox import CHANNELS, TABS
from console.render import safe_next
from ticket_service.api.routing import STATUSES as AGENT_STATUSES
from ticket_service.api.routing import TICKET_STATUSES
from ticket_service.store.reports import GROUPS
from ticket_service.store.users import ROLES

TEMPLATES = Path(i18n.__file__).parent / "templates"


def test_every_entry_has_english_and_chinese_text():
    blank = [k for k, (en, zh) in i18n.CATALOGUE.items() if not en.strip() or not zh.strip()]
    assert blank == []


def test_every_key_a_template_names_is_in_the_catalogue():
    used = {key for path in TEMPLATES.glob("*.html")
            for key in re.findall(r"\bt\('([a-z_.]+)'\)", path.read_text())}
    assert len(used) > 40
    assert sorted(used - set(i18n.CATALOGUE)) == []


def test_keys_built_from_values_exist_for_every_value():
    # Templates build these keys from stored values: t('status.' ~ r.status) and the like.
    built = ([f"status.{s}" for s in TICKET_STATUSES] + [f"channel.{c}" for c in CHANNELS]
             + [f"role.{r}" for r in ROLES] + [f"inbox.tab.{t}" for t in TABS]
             + [f"delivery.{d}" for d in ("queued", "sent", "delivered", "failed")]
             + [f"agent_status.{s}" for s in AGENT_STATUSES] + [f"class.{c}" for c in ("email", "chat", "voice")]
             + [f"dash.by.{g}" for g in GROUPS] + [f"unit.{u}" for u in ("s", "min", "h", "d")]
             + [f"ops.{a}" for a in ("replay", "drop", "replayed", "dropped")]
             + [f"sla.state.{s}" for s in (*sla.FILTERS, "paused")] + [f"sla.metric.{m}" for m in sla.METRICS])
    assert [k for k in built if k not in i18n.CATALOGUE] == []


def test_language_from_cookie_then_accept_language_weights_then_english():
    def lang(headers):
        return i18n.language(make_mocked_request("GET", "/", headers=headers))

    assert lang({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}) == "zh"
    assert lang({"Accept-Language": "en;q=0.5, zh-TW;q=0.9"}) == "zh"
    assert lang({"Accept-Language": "fr-FR, en;q=0.3"}) == "en"
    assert lang({"Accept-Language": "fr-FR"}) == "en"
    assert lang({"Accept-Language": "zh;q=0"}) == "en"
    assert lang({"Accept-Language": "zh-CN", "Cookie": "sb_lang=en"}) == "en"
    assert lang({"Cookie": "sb_lang=xx"}) == "en"


def test_times_show_in_the_tenant_zone_and_an_unknown_zone_is_utc():
    ms = int(datetime(2026, 11, 20, 3, 30, tzinfo=UTC).timestamp() * 1000)
    assert i18n.local_time(ms, "Asia/Shanghai") == "2026-11-20 11:30"
    assert i18n.local_time(ms, "UTC") == "2026-11-20 03:30"
    assert i18n.local_time(ms, "Not/AZone") == "2026-11-20 03:30"
    assert i18n.local_time(None, "UTC") == ""


def test_redirect_targets_stay_on_the_site():
    assert safe_next("/tickets/3?done=ticket.saved") == "/tickets/3?done=ticket.saved"
    for hostile in ("https://evil.test/", "//evil.test/x", "/\\evil.test", "javascript:alert(1)", "", None):
        assert safe_next(hostile) == "/"


def test_tags_are_split_on_either_comma_deduplicated_and_bounded():
    assert parse_tags(" vip, 退款，vip ,, refund ") == ["vip", "退款", "refund"]
    assert parse_tags("") == []
    assert parse_tags("x" * 65) is None
    assert parse_tags(",".join(f"t{n}" for n in range(21))) is None


def test_durations_read_as_people_say_them_in_both_languages():
    assert [i18n.duration("en", s) for s in (0, 45, 90, 3600, 3601, 12_000, 190_000)] == [
        "0 s", "45 s", "1 min 30 s", "1 h", "1 h", "3 h 20 min", "2 d 4 h"]
    assert i18n.duration("zh", 5400) == "1 小时 30 分钟"
