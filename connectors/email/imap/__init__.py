"""IMAP ingress: pollers that fetch support mailboxes (IDLE where offered) into ``ingest.email``."""

from connectors.email.imap.poller import ImapPoller

__all__ = ["ImapPoller"]
