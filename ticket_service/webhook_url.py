"""Where a webhook may point: the URL's form, and the addresses its host may resolve to.

A webhook makes this server send requests to an address a tenant chose. Unless the tenant
is allowed private targets (``webhooks_allow_private``), an address that is not on the
public internet is refused: loopback, private (RFC 1918, RFC 4193), link-local (where cloud
metadata services live, 169.254.169.254), shared (RFC 6598), multicast, reserved and
unspecified ones. The check runs when the webhook is created and again at each delivery,
on the address actually connected to, so a name that later resolves elsewhere (DNS
rebinding) is refused then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

MAX_URL = 2048
ALLOW_PRIVATE = "webhooks_allow_private"  # the tenant setting (tenants.settings)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetError(ValueError):
    """A URL a webhook may not use; the message says why, in words for the tenant."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check(url: object) -> SplitResult:
    """``url`` split, if its form is one a webhook may have; else ``TargetError``."""
    if not isinstance(url, str) or not url:
        raise TargetError("must be an http or https URL")
    if len(url) > MAX_URL:
        raise TargetError(f"is longer than {MAX_URL} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise TargetError("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in _DEFAULT_PORTS:
        raise TargetError("must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        # The secret belongs in the signing secret, not in a URL that is shown and logged.
        raise TargetError("must not carry credentials (user:password@)")
    if not parts.hostname:
        raise TargetError("has no host")
    if parts.fragment:
        raise TargetError("must not have a fragment (#...)")
    if port == 0:
        raise TargetError("has port 0")
    return parts


def port_of(parts: SplitResult) -> int:
    return parts.port or _DEFAULT_PORTS[parts.scheme]


def refusal(address: str) -> str | None:
    """Why a webhook may not connect to ``address`` (an IP literal), or None if it may."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for kind, hit in (("a loopback", ip.is_loopback), ("a link-local", ip.is_link_local),
                      ("a multicast", ip.is_multicast), ("an unspecified", ip.is_unspecified),
                      ("a private", ip.is_private), ("a reserved", ip.is_reserved)):
        if hit:
            return f"{address} is {kind} address"
    if not ip.is_global:  # shared address space (RFC 6598) and the like
        return f"{address} is not a public address"
    return None


def literal(host: str) -> str | None:
    """``host`` if it is an IP literal (``[::1]`` without brackets), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (getaddrinfo off the event loop)."""
    if (ip := literal(host)) is not None:
        return [ip]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_target(url: str, allow_private: bool, resolve_s: float = 5.0) -> SplitResult:
    """``check`` and, unless private targets are allowed, every address the host resolves to."""
    parts = check(url)
    if allow_private:
        return parts
    try:
        addresses = await asyncio.wait_for(resolve(parts.hostname or "", port_of(parts)), resolve_s)
    except (OSError, TimeoutError):
        raise TargetError(f"host {parts.hostname} does not resolve") from None
    for address in addresses:
        why = refusal(address)
        if why:
            raise TargetError(f"resolves to {why}; only public addresses are allowed unless the "
                              f"tenant sets {ALLOW_PRIVATE}")
    return parts
