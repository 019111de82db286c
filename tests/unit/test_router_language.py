"""Language detection counts scripts with regular expressions: the same answer as a count
character by character, for any text."""

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from router.language import detect_language

DIFFERENTIAL = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000")), deadline=None,
                        derandomize=not os.environ.get("FUZZ_EXAMPLES"),
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _script(ch: str) -> str:
    code = ord(ch)
    if 0x3040 <= code <= 0x30FF:
        return "kana"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF:
        return "hangul"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF:
        return "han"
    if ch.isalpha() and code < 0x250:
        return "latin"
    return ""


def by_character(text: str) -> str:
    """The detection as first written: one character at a time."""
    counts = {"han": 0, "kana": 0, "hangul": 0, "latin": 0}
    for ch in text[:4000]:
        script = _script(ch)
        if script:
            counts[script] += 1
    cjk = counts["han"] + counts["kana"] + counts["hangul"]
    if cjk == 0 and counts["latin"] == 0:
        return ""
    if cjk * 4 < counts["latin"]:
        return "latin"
    if counts["kana"]:
        return "ja"
    if counts["hangul"] > counts["han"]:
        return "ko"
    return "zh"


# Each script's first and last character and its neighbours outside it, Latin letters and
# the non-letters among them, and characters from anywhere.
_EDGES = [c + d for c in (0x3040, 0x30FF, 0xAC00, 0xD7AF, 0x1100, 0x11FF, 0x4E00, 0x9FFF, 0x3400, 0x4DBF,
                          0xF900, 0xFAFF, 0x250) for d in (-1, 0, 1)]
_char = st.one_of(st.sampled_from([chr(c) for c in _EDGES]), st.characters(max_codepoint=0x24F),
                  st.characters(min_codepoint=0x1100, max_codepoint=0xFAFF), st.characters())
_text = st.lists(st.one_of(_char, st.sampled_from(["Order 1042 ", "您好，", "注文", "주문 ", "\u00e9t\u00e9 ", " "])),
                 max_size=40).map("".join)


@DIFFERENTIAL
@given(_text)
@example("ª" * 5)  # letters below U+0250 that are not A-Z: Latin too
@example("a" * 4000 + "您")  # only the first 4,000 characters count
@example("Order 12: 您好")  # four Latin letters to a CJK character
@example("\ud800abc")  # a lone surrogate, as decoding with surrogateescape leaves
def test_detection_matches_a_count_character_by_character(text):
    assert detect_language(text) == by_character(text)


def test_long_text_is_cut_at_4000_characters_as_before():
    assert detect_language("a" * 4000 + "您" * 2000) == by_character("a" * 4000 + "您" * 2000) == "latin"
    assert detect_language("您" * 1001 + "a" * 4000) == "zh"
