"""WeChat's flat XML documents, parsed safely: no DTD, so no entity of any kind.

``<xml><Tag>text</Tag>...</xml>`` is all WeChat sends, and the gateway and the normalizer
parse every push (twice in safe mode), so this reads the document with expat's callbacks
instead of building an ElementTree: the same parser ElementTree and defusedxml use, with
the same refusals (a DOCTYPE, and with it any entity declaration or external reference,
is an error), at about half the cost.
"""

from __future__ import annotations

from xml.parsers import expat


class BadXml(ValueError):
    pass


def _refuse(what: str):
    def handler(*_args) -> None:
        raise BadXml(f"malformed XML: {what} not allowed")
    return handler


class _Flat:
    """Collects each child of the root element: its tag and the text before its own first child."""

    __slots__ = ("root", "depth", "tag", "text", "closed", "out")

    def __init__(self) -> None:
        self.root, self.depth, self.tag, self.text, self.closed, self.out = None, 0, "", [], False, {}

    def start(self, name: str, _attrs) -> None:
        self.depth += 1
        if self.depth == 1:
            self.root = name
        elif self.depth == 2:
            self.tag, self.text, self.closed = name, [], False
        elif self.depth == 3:
            self.closed = True  # ElementTree's .text ends at the first child element

    def end(self, _name: str) -> None:
        if self.depth == 2:
            self.out[_tag(self.tag)] = "".join(self.text).strip()
        self.depth -= 1

    def chars(self, data: str) -> None:
        if self.depth == 2 and not self.closed:
            self.text.append(data)


_NO_DOCTYPE, _NO_ENTITY = _refuse("a DOCTYPE"), _refuse("an entity declaration")
_NO_EXTERNAL = _refuse("an external entity")


def _tag(name: str) -> str:
    return "{" + name if "}" in name else name  # namespaced, as ElementTree writes it


def fields(data: bytes | str) -> dict[str, str]:
    """``<xml><Tag>text</Tag>...</xml>`` -> {tag: text}; nested elements keep their text only."""
    flat = _Flat()
    parser = expat.ParserCreate(None, "}")
    parser.buffer_text = True
    parser.StartElementHandler, parser.EndElementHandler = flat.start, flat.end
    parser.CharacterDataHandler = flat.chars
    parser.StartDoctypeDeclHandler = _NO_DOCTYPE
    parser.EntityDeclHandler = parser.UnparsedEntityDeclHandler = _NO_ENTITY
    parser.ExternalEntityRefHandler = _NO_EXTERNAL
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise BadXml(f"malformed XML: {exc}") from None
    if flat.root != "xml":
        raise BadXml(f"root element is <{_tag(flat.root)}>, not <xml>")
    return flat.out
