"""Telephony: signed call records, Twilio voice webhooks and FreeSWITCH CDRs under ``/voice``."""

from connectors.voice.parse import parse
from connectors.voice.routes import setup_routes

__all__ = ["parse", "setup_routes"]
