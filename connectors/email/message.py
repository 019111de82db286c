"""The parsed mail: the stdlib's ``Message`` and compat32 policy, each header field read once.

The stdlib looks a header up by walking every field and lower-casing its name, and splits
a Content-Type's parameters again on every question asked of it: a part's content type,
charset, file name and boundary each cost one walk and one split, and reading a mail asks
them of every part several times (the bench's mail mix, ``ops.bench.email.mail_mix(2000)``,
made 42 header look-ups per mail, 14 of them for a part's content type, and 5 splits).
Keeping what was read took ``mime.parse`` from 462 to 433 µs of CPU per mail over that mix
(``time.process_time``, best of 5 runs alternating with the code before), and answering
an absent field without a call a few µs more. ``get_param`` looks the name up in the
parameters kept by lower-case name rather than walking them, and parameter lists are kept
by field value for every message (parts repeat ``text/plain; charset="utf-8"``): the
stdlib's split (``_parseparam``) ran 4,509 times over the mix, now 1,525, nearly all for
values seen once (a multipart's boundary, an attachment's file name).

``ParsedMessage`` keeps, per message, the fields by lower-case name, the values the
policy made of them and the parameters split from them, for as long as the fields stay as
they were: each look-up first compares the fields with the copy the index was built from
(one C-level list comparison), so any change (``set_param``, a new field, the generator
setting a boundary) makes it read them again. Only values the policy returns as ``str``
keep derived results (a ``Header`` object can change in place). The answers are the
stdlib's own: values come from the policy's ``header_fetch_parse``, parameters and content
types from the stdlib methods, only not again.
"""

from __future__ import annotations

from email.message import Message, _unquotevalue
from email.policy import compat32

MAX_HEADER_CHARS = 16 * 1024
# The stdlib splits parameters in time quadratic in their number: cut those headers shorter.
MAX_PARAM_HEADER_CHARS = 8 * 1024
MAX_PARAMS = 64
_PARAM_HEADERS = frozenset({"content-type", "content-disposition"})
_ABSENT = object()
_SHARED_VALUES = 256  # parameter lists kept by field value, for every message
_SHARED_CHARS = 256
_SHARED_PARAMS: dict[str, list | None] = {}


class RawPolicy(type(compat32)):
    """compat32, but header values come back raw (8-bit stays surrogate-escaped) and capped.

    ``header_fetch_parse`` depends on the name and value alone, which is what lets
    ``ParsedMessage`` keep what it returned.
    """

    def header_fetch_parse(self, name, value):
        if not isinstance(value, str):
            return value
        if name.lower() not in _PARAM_HEADERS:
            return value[:MAX_HEADER_CHARS]
        kept = value[:MAX_PARAM_HEADER_CHARS].split(";", MAX_PARAMS + 1)[: MAX_PARAMS + 1]
        return ";".join(kept)


class _Fields:
    """One message's header fields as they were when indexed, and what was read from them."""

    __slots__ = ("policy", "headers", "raw", "values", "params", "named", "ctype", "maintype")

    def __init__(self, policy: RawPolicy, headers: list) -> None:
        self.policy = policy
        self.headers = list(headers)
        self.raw: dict[str, list[tuple[str, object]]] = {}
        for name, value in self.headers:
            self.raw.setdefault(name.lower(), []).append((name, value))
        self.values: dict[str, list[object]] = {}  # the policy's values, by lower-case name
        self.params: dict[str, list | None] = {}  # _get_params_preserve, by lower-case header
        self.named: dict[str, dict | None] = {}  # _named_params, by lower-case header
        self.ctype: str | None = None
        self.maintype: str | None = None


class TolerantMessage(Message):
    """A header parameter the stdlib cannot read (a malformed RFC 2231 value) is ``failobj``,
    as if absent, instead of an exception out of the parse."""

    def get_params(self, failobj=None, header="content-type", unquote=True):
        try:
            return super().get_params(failobj, header, unquote)
        except (TypeError, ValueError):
            return failobj

    def get_param(self, param, failobj=None, header="content-type", unquote=True):
        try:
            return super().get_param(param, failobj, header, unquote)
        except (TypeError, ValueError):
            return failobj


class ParsedMessage(TolerantMessage):
    """A Message that reads each header field once, and whose malformed parameters read as
    absent instead of raising.

    The stdlib raises TypeError for ``name=a; name*0=b`` and ValueError for a 5,000-digit
    continuation number.
    """

    _fields: _Fields | None = None

    def _index(self) -> _Fields | None:
        """The fields, indexed again when they changed; None under a policy not known pure."""
        fields = self._fields
        if fields is not None and fields.policy is self.policy and fields.headers == self._headers:
            return fields
        if not isinstance(self.policy, RawPolicy):
            return None
        fields = self._fields = _Fields(self.policy, self._headers)
        return fields

    def _values(self, name: str) -> list[object] | None:
        """The policy's values of the fields called ``name`` (any case); None: ask the stdlib."""
        fields = self._index()
        if fields is None:
            return None
        name = name.lower()
        values = fields.values.get(name)
        if values is None:
            fetch = self.policy.header_fetch_parse
            values = fields.values[name] = [fetch(k, v) for k, v in fields.raw.get(name, ())]
        return values

    def get(self, name, failobj=None):
        # _values inline: reading a mail asks 30 times, for a dozen names mostly absent.
        fields = self._fields
        if fields is None or fields.policy is not self.policy or fields.headers != self._headers:
            values = self._values(name)
            if values is None:
                return super().get(name, failobj)
            return values[0] if values else failobj
        name = name.lower()
        values = fields.values.get(name)
        if values is None:
            if name not in fields.raw:
                return failobj
            values = self._values(name)
        return values[0] if values else failobj

    def get_all(self, name, failobj=None):
        values = self._values(name)
        if values is None:
            return super().get_all(name, failobj)
        return list(values) if values else failobj

    def __contains__(self, name):
        fields = self._index()
        return name.lower() in fields.raw if fields is not None else super().__contains__(name)

    def get_content_type(self):
        fields = self._index()
        if fields is None or fields.ctype is None:
            ctype = super().get_content_type()
            # Without a Content-Type it is the default type, which can be set at any time.
            if fields is not None and isinstance(self.get("content-type"), str):
                fields.ctype = ctype
                fields.maintype = ctype.split("/")[0]
            return ctype
        return fields.ctype

    def get_content_maintype(self):
        # Asked of every part by the parser and each walk over the parts: 10 times a mail.
        fields = self._fields
        if fields is not None and fields.maintype is not None and fields.policy is self.policy \
                and fields.headers == self._headers:
            return fields.maintype
        return self.get_content_type().split("/")[0]

    def get_param(self, param, failobj=None, header="content-type", unquote=True):
        fields = self._index()
        if fields is None or type(param) is not str or type(header) is not str:
            return super().get_param(param, failobj, header, unquote)
        # Each part is asked for its charset, name, file name and boundary: one look-up each in
        # the parameters by name, not a walk over them all lower-casing every name.
        key = header.lower()
        named = fields.named.get(key, _ABSENT)
        if named is _ABSENT:
            named = self._named_params(header)
            value = self.get(header)
            if value is None or isinstance(value, str):
                fields.named[key] = named
        found = named.get(param.lower(), _ABSENT) if named is not None else _ABSENT
        if found is _ABSENT:
            return failobj
        return _unquotevalue(found) if unquote else found

    def _named_params(self, header: str) -> dict[str, object] | None:
        """Each parameter's first value by lower-case name, as ``get_param`` finds them (quoted);
        None where it answers ``failobj`` whatever the name: no such field, or parameters
        the stdlib cannot read."""
        try:
            params = self._get_params_preserve(None, header)
        except (TypeError, ValueError):
            return None
        if params is None:
            return None
        named: dict[str, object] = {}
        for name, value in params:
            named.setdefault(name.lower(), value)
        return named

    def _get_params_preserve(self, failobj, header):
        # What get_params and get_param read (the stdlib's internal name, Python 3.11-3.13).
        fields = self._index()
        if fields is None:
            return super()._get_params_preserve(failobj, header)
        key = header.lower()
        params = fields.params.get(key, _ABSENT)
        if params is _ABSENT:
            value = self.get(header)
            if type(value) is str and len(value) <= _SHARED_CHARS:
                # A pure function of the value, and mails repeat their parts' values
                # ('text/plain; charset="utf-8"'): split once for all the mails.
                params = _SHARED_PARAMS.get(value, _ABSENT)
                if params is _ABSENT:
                    params = super()._get_params_preserve(None, header)  # an error raised is not kept
                    if len(_SHARED_PARAMS) >= _SHARED_VALUES:
                        _SHARED_PARAMS.clear()
                    _SHARED_PARAMS[value] = params
            else:
                params = super()._get_params_preserve(None, header)
            if value is None or isinstance(value, str):
                fields.params[key] = params
        # A copy: get_params(unquote=False) hands the list itself to the caller.
        return failobj if params is None else list(params)

