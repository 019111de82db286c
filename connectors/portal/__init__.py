"""Status page: messages customers add on ``/portal/{token}``, published by the api role."""

from connectors.portal.parse import parse, reply_token_places
from core.channel import Channel

# The page is served by the api role (it verifies the signed link), so there are no gateway
# routes here. A message joins its ticket by the signed reply token the page put in it; the
# portal is not a way back: replies go on the customer's original channel.
CHANNEL = Channel(name="portal", capacity_class="chat", parse=parse, account_secrets=False,
                  reply_token_places=reply_token_places)

__all__ = ["CHANNEL", "parse"]
