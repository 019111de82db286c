"""Telephony: signed call records, Twilio voice webhooks and FreeSWITCH CDRs under ``/voice``."""

from connectors.voice.call import on_duplicate
from connectors.voice.parse import parse
from connectors.voice.routes import setup_routes
from core.channel import Channel

# One call is one message: later events of a call (any order, any retry) merge into it.
CHANNEL = Channel(name="voice", capacity_class="voice", parse=parse, routes=setup_routes, on_duplicate=on_duplicate)

__all__ = ["CHANNEL", "parse", "setup_routes"]
