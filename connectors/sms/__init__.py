"""SMS: Twilio Messaging webhooks and Aliyun SmsUp batch pushes under ``/sms/{account}``."""

from connectors.sms.parse import parse
from connectors.sms.routes import setup_routes
from core.channel import Channel

# Texts are short and asynchronous: an agent keeps several going at once, as with WeChat.
CHANNEL = Channel(name="sms", capacity_class="chat", parse=parse, routes=setup_routes)

__all__ = ["CHANNEL", "parse", "setup_routes"]
