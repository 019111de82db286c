"""WeChat's flat XML documents, parsed safely (no DTD, no entities: defusedxml)."""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


class BadXml(ValueError):
    pass


def fields(data: bytes | str) -> dict[str, str]:
    """``<xml><Tag>text</Tag>...</xml>`` -> {tag: text}; nested elements keep their text only."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException) as exc:
        raise BadXml(f"malformed XML: {exc}") from None
    if root.tag != "xml":
        raise BadXml(f"root element is <{root.tag}>, not <xml>")
    return {child.tag: (child.text or "").strip() for child in root}
