"""The language of a ticket's first message, for rules that match on it."""

from __future__ import annotations


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


def detect_language(text: str) -> str:
    """``zh``/``ja``/``ko`` for CJK text, ``latin`` for Latin-script text, ``""`` when unsure."""
    counts = {"han": 0, "kana": 0, "hangul": 0, "latin": 0}
    for ch in text[:4000]:
        script = _script(ch)
        if script:
            counts[script] += 1
    # One CJK character carries about a word; Latin letters count per ~4 to a word.
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
