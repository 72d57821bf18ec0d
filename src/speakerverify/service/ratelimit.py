"""Rate limits of the REST service: requests per API key, and failed authentications per client.

* :class:`KeyRateLimit` -- a token bucket per key name: ``burst`` requests at once, refilled at
  ``per_minute`` a minute. A key over it gets 429 with ``Retry-After``; other keys are unaffected.
* :class:`AuthFailureLimit` -- a sliding window per client address: after ``limit`` wrong keys
  within ``window_s`` seconds, that address gets 429 on every keyed route *before* its key is
  checked, until the oldest failure leaves the window (so guessing keys costs the guesser time).

Both take a ``clock`` (seconds, monotonic) so tests can move time without sleeping. They are
hand-written rather than taken from ``slowapi``/``limits``: those read the wall clock themselves
(no injectable clock), key limits on routes rather than on the authenticated key's name, and would
add a dependency for some thirty lines. State is in memory, per server process.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class KeyRateLimit:
    """Token buckets, one per key name; ``per_minute <= 0`` turns the limit off."""

    def __init__(self, per_minute: float, burst: int | None = None, clock: Clock = time.monotonic) -> None:
        self.rate = max(0.0, float(per_minute)) / 60.0  # tokens per second
        self.capacity = float(burst if burst is not None else max(1, math.ceil(per_minute / 10)))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill time)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, name: str) -> float | None:
        """Spend one request of ``name``'s budget: ``None`` when allowed, else seconds to wait."""
        if not self.enabled:
            return None
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(name, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return None
            self._buckets[name] = (tokens, now)
            return (1.0 - tokens) / self.rate


class AuthFailureLimit:
    """Failed authentications per client address in a sliding window; ``limit <= 0`` turns it off."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Clock = time.monotonic,
                 max_clients: int = 100_000) -> None:
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.clock = clock
        self.max_clients = max_clients  # bounds memory under a flood of addresses
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def blocked(self, client: str) -> float | None:
        """Seconds until ``client`` may try a key again, or ``None`` when it may now."""
        if not self.enabled:
            return None
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times is None or len(times) < self.limit:
                return None
            return times[-self.limit] + self.window_s - now

    def failed(self, client: str) -> None:
        """Count one wrong key from ``client``."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            times = self._recent(client, now)
            if times is None:
                if len(self._failures) >= self.max_clients:
                    # Forget the client whose failures are oldest (dicts keep insertion order).
                    self._failures.pop(next(iter(self._failures)))
                times = self._failures[client] = deque(maxlen=self.limit)
            times.append(now)
