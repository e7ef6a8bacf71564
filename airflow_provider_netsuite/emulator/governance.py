"""Account governance: the concurrency limit on requests in flight, added latency, and request statistics.

NetSuite counts every request against one per-account concurrency limit. A request that would exceed it
is refused at once with 429 (it is not queued). Latency configured here is spent while the request is
counted in flight, so slow requests make throttling observable, as on a busy account.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_netsuite.emulator.state import RuntimeConfig


@dataclass
class Stats:
    """Counters the tests and benchmarks read through ``GET /_emulator/stats``."""

    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    throttled: int = 0
    peak_in_flight: int = 0
    tokens_issued: int = 0
    tba_requests: int = 0
    token_requests: int = 0
    faults_injected: Counter = field(default_factory=Counter)

    def as_dict(self, in_flight: int) -> dict[str, Any]:
        """Return the counters as JSON-ready values, with the number in flight now."""
        return {
            "requests": self.requests,
            "by_status": {str(status): count for status, count in sorted(self.by_status.items())},
            "throttled": self.throttled,
            "peak_in_flight": self.peak_in_flight,
            "in_flight": in_flight,
            "tokens_issued": self.tokens_issued,
            "tba_requests": self.tba_requests,
            "token_requests": self.token_requests,
            "faults_injected": dict(sorted(self.faults_injected.items())),
        }


class Governor:
    """Admit or refuse data requests against the concurrency limit, and add latency to admitted ones."""

    def __init__(self, config: RuntimeConfig, *, seed: int | None = None) -> None:
        self.config = config
        self.stats = Stats()
        self.in_flight = 0
        self._random = random.Random(seed)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[bool]:
        """Hold one concurrency slot for a request; yield ``False`` if the limit refuses it.

        Runs on the event loop only, so the counter needs no lock: nothing awaits between the check
        and the increment.
        """
        if self.in_flight >= self.config.concurrency_limit:
            self.stats.throttled += 1
            yield False
            return
        self.in_flight += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self.in_flight)
        started = time.monotonic()
        try:
            yield True
            await self._sleep_rest_of_latency(started)
        finally:
            self.in_flight -= 1

    async def _sleep_rest_of_latency(self, started: float) -> None:
        # The configured latency is the response time of an admitted request, as a client of NetSuite
        # sees it: the emulator's own work counts towards it, and only the rest is slept.
        delay = (self.config.latency_ms + self._random.uniform(0, self.config.jitter_ms)) / 1000
        remaining = delay - (time.monotonic() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)

    def record(self, status: int) -> None:
        """Count one answered NetSuite request by its status."""
        self.stats.requests += 1
        self.stats.by_status[status] += 1

    def reset(self) -> None:
        """Zero the counters (requests in flight stay counted)."""
        self.stats = Stats()

    def limits(self) -> dict[str, Any]:
        """Return the body of ``GET /services/rest/system/v1/governanceLimits``."""
        limit = self.config.concurrency_limit
        return {
            "accountConcurrencyLimit": limit,
            "accountUnallocatedConcurrencyLimit": limit,
            "integrationConcurrencyLimit": limit,
            "integrationLimitType": "accountLimit",
        }
