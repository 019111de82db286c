"""The channels this build knows. A new channel is one package plus one line in ``DEFAULT``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from connectors import email, portal, sdk, sms, voice, webform, wechat, weibo
from core.channel import Channel

DEFAULT: tuple[Channel, ...] = (
    email.CHANNEL,
    wechat.CHANNEL,
    weibo.CHANNEL,
    webform.CHANNEL,
    sdk.CHANNEL,
    voice.CHANNEL,
    sms.CHANNEL,
    portal.CHANNEL,
)


def registry(channels: Iterable[Channel] = DEFAULT) -> dict[str, Channel]:
    """``{name: Channel}``; two channels of one name are a build mistake."""
    out: dict[str, Channel] = {}
    for channel in channels:
        if channel.name in out:
            raise ValueError(f"channel {channel.name!r} registered twice")
        out[channel.name] = channel
    return out


CHANNELS: Mapping[str, Channel] = MappingProxyType(registry())


def secret_channels(channels: Mapping[str, Channel] = CHANNELS) -> frozenset[str]:
    """The channels whose accounts' sealed secrets verify their requests (the directory opens those)."""
    return frozenset(name for name, c in channels.items() if c.account_secrets)


def capacity_classes(channels: Mapping[str, Channel] = CHANNELS) -> dict[str, str]:
    """``{channel name: capacity class}``, the map the router and the store are handed."""
    return {name: c.capacity_class for name, c in channels.items()}
