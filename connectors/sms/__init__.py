"""SMS: Twilio Messaging webhooks and Aliyun SmsUp batch pushes under ``/sms/{account}``."""

from connectors.sms.parse import parse
from connectors.sms.routes import setup_routes

__all__ = ["parse", "setup_routes"]
