"""Email channel: ``parse`` turns a raw RFC 5322 message into one ``Inbound``."""

from connectors.email.mime import UnparseableMail, parse

__all__ = ["UnparseableMail", "parse"]
