"""Keep the number of requests in flight under the account's concurrency limit, adapting after 429s."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


class ConcurrencyGovernor:
    """Cap the requests in flight; halve the cap after a 429 and raise it by one after a run of successes.

    NetSuite's concurrency limit is per account and shared with every other integration, so the right
    number of parallel requests is not known in advance: this is additive increase, multiplicative decrease.

    :param max_concurrency: the cap to start from and never exceed (at least 1).
    """

    def __init__(self, max_concurrency: int = 4) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError("max_concurrency must be a positive integer")
        self.max_concurrency = max_concurrency
        self._limit = max_concurrency
        self._in_flight = 0
        self._successes = 0
        self._condition = threading.Condition()
        self.peak_in_flight = 0
        self.throttles = 0

    @property
    def limit(self) -> int:
        """Return the current cap on requests in flight."""
        return self._limit

    @property
    def in_flight(self) -> int:
        """Return the number of requests holding a slot now."""
        return self._in_flight

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one request slot, blocking while the requests in flight reach the current cap."""
        with self._condition:
            while self._in_flight >= self._limit:
                self._condition.wait()
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            yield
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify()  # one slot is free: wake one waiter, not all of them

    def on_throttled(self) -> None:
        """Halve the cap (not below 1) after NetSuite answered 429."""
        with self._condition:
            self.throttles += 1
            self._successes = 0
            lowered = max(1, self._limit // 2)
            if lowered < self._limit:
                self._limit = lowered
                log.warning("lowered concurrency to %d after a 429", lowered)

    def on_success(self) -> None:
        """Count a success; after ``limit`` successes in a row, raise the cap by one up to the maximum."""
        with self._condition:
            self._successes += 1
            if self._successes >= self._limit and self._limit < self.max_concurrency:
                self._limit += 1
                self._successes = 0
                log.info("raised concurrency to %d", self._limit)
                self._condition.notify_all()
