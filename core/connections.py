"""Open connections per peer address and in total, for one listener (SMTP, HTTP)."""

from __future__ import annotations

from collections import Counter

PER_IP = "per_ip"
TOTAL = "total"


class ConnectionLimits:
    """Admit a connection while its address and the listener are under their caps (0: no cap).

    Behind a proxy every connection comes from the proxy's address: raise or switch off the
    per-address cap there.
    """

    def __init__(self, per_ip: int, total: int) -> None:
        self.per_ip, self.total = per_ip, total
        self.open: Counter[str] = Counter()
        self.count = 0

    def admit(self, address: str) -> str | None:
        """Count the connection in and return None, or return which cap it is over (PER_IP, TOTAL)."""
        if self.total and self.count >= self.total:
            return TOTAL
        if self.per_ip and self.open[address] >= self.per_ip:
            return PER_IP
        self.open[address] += 1
        self.count += 1
        return None

    def release(self, address: str) -> None:
        self.count -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
