"""In-process token buckets for the widget: per connection and per client IP address.

Each process keeps its own buckets (no shared state), so behind a load balancer with N servers a
client may get up to N times the per-IP rate; the per-connection limits hold exactly. Buckets of
idle addresses are forgotten, bounding memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Hashable


class TokenBucket:
    """Holds up to ``capacity`` tokens, refilled at ``rate`` per second; each action takes one."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def full_at(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


class BucketMap:
    """One bucket per key (e.g. an IP address), at most ``max_keys`` of them: when full, the least
    recently used key is dropped (it is at worst given a fresh bucket later)."""

    def __init__(self, capacity: float, per_minute: float, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.rate = per_minute / 60.0
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()

    def take(self, key: Hashable, cost: float = 1.0) -> bool:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.capacity, self.rate, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now, cost)

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self) -> TokenBucket:
        """A bucket with this map's capacity and rate, for one connection."""
        return TokenBucket(self.capacity, self.rate, self.clock())
