"""A request-rate limit: a token bucket, answered with 429 and ``Retry-After`` when empty.

The endpoint writes through to targets that have limits of their own; a burst from Entra (its
initial cycle sends as fast as the endpoint answers) is better slowed at the door, where Entra
understands 429 and ``Retry-After``, than turned into failures further down. A token bucket allows
short bursts up to ``burst`` requests and ``rate`` requests a second on average.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests a second on average, bursts of up to ``burst`` (default: one second's worth)."""

    rate: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("a rate limit is a positive number of requests a second")
        if self.burst is not None and self.burst < 1:
            raise ValueError("a burst allows at least one request")

    @property
    def capacity(self) -> float:
        return float(self.burst if self.burst is not None else max(1.0, self.rate))


@dataclass
class TokenBucket:
    """The bucket: ``take()`` spends one token, or says how long until one is there."""

    limit: RateLimit
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _at: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens = self.limit.capacity
        self._at = self.clock()

    def take(self) -> float | None:
        """None when the request may go ahead, else the seconds until it could."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.limit.capacity, self._tokens + (now - self._at) * self.limit.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self.limit.rate
