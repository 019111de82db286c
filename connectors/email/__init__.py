"""Email channel: ``parse`` turns a raw RFC 5322 message into one ``Inbound``.

Mail arrives through its own servers (``smtp``, ``imap``), so the channel mounts no routes.
"""

from connectors.email.mime import UnparseableMail, parse
from connectors.email.reply_tokens import token_places
from core.channel import Channel


def account_address(address: str) -> str:
    """Lower case, as RCPT TO is looked up (RFC 5321 §2.4 allows a case-sensitive local part; no
    mailbox provider uses one, and senders' capitalisation varies)."""
    return address.strip().lower()


# An email account's sealed secret is its IMAP password (``switchboard account imap``), opened
# only by the poller, never settings to verify requests with.
CHANNEL = Channel(name="email", capacity_class="email", parse=parse, account_address=account_address,
                  account_secrets=False, reply_token_places=token_places)

__all__ = ["CHANNEL", "UnparseableMail", "parse"]
