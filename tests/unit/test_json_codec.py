"""The JSON columns' codec: orjson, and the json module for what orjson refuses."""

import json

from ticket_service.store.db import _json_dumps, _json_loads


def test_values_round_trip_as_the_json_module_reads_them():
    value = {"wechat": {"msg_type": "text", "to": "gh_x"}, "cc": ["李伟 <li@example.cn>"], "n": 3, "ok": True}
    text = _json_dumps(value)
    assert json.loads(text) == _json_loads(text) == value
    assert "李伟" in text  # Chinese stays text, not \\u escapes
    assert _json_dumps({1: "a"}) == '{"1":"a"}'  # integer keys as the json module writes them


def test_what_orjson_refuses_goes_through_the_json_module():
    big = {"n": 1 << 70}
    assert _json_dumps(big) == json.dumps(big) and _json_loads(_json_dumps(big)) == big
    # A lone surrogate escape the json module wrote into older rows still reads back.
    older = json.dumps({"subject": "\ud800 broken"})
    assert _json_loads(older) == {"subject": "\ud800 broken"}
