"""The concurrency governor: a cap on requests in flight, halved after 429s, raised slowly."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from airflow_provider_netsuite.core.governor import ConcurrencyGovernor


def test_halves_on_throttle_not_below_one(caplog):
    governor = ConcurrencyGovernor(8)
    with caplog.at_level(logging.WARNING):
        governor.on_throttled()
    assert governor.limit == 4
    assert "lowered concurrency to 4 after a 429" in caplog.text
    for _ in range(5):
        governor.on_throttled()
    assert governor.limit == 1
    assert governor.throttles == 6


def test_raises_by_one_after_limit_successes_up_to_max():
    governor = ConcurrencyGovernor(4)
    governor.on_throttled()
    governor.on_throttled()
    assert governor.limit == 1
    governor.on_success()
    assert governor.limit == 2
    governor.on_success()
    assert governor.limit == 2
    governor.on_success()
    assert governor.limit == 3
    for _ in range(3):
        governor.on_success()
    assert governor.limit == 4
    for _ in range(20):
        governor.on_success()
    assert governor.limit == 4


def test_throttle_resets_success_run():
    governor = ConcurrencyGovernor(4)
    governor.on_throttled()
    governor.on_success()
    governor.on_throttled()
    governor.on_success()
    assert governor.limit == 1 + 1


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_invalid_max(bad):
    with pytest.raises(ValueError, match="max_concurrency"):
        ConcurrencyGovernor(bad)


def test_slots_never_exceed_limit_under_threads():
    governor = ConcurrencyGovernor(3)
    seen: list[int] = []
    lock = threading.Lock()

    def work():
        with governor.slot():
            with lock:
                seen.append(governor.in_flight)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(seen) <= 3
    assert governor.peak_in_flight == 3
    assert governor.in_flight == 0


def test_lowered_limit_blocks_new_slots():
    governor = ConcurrencyGovernor(2)
    governor.on_throttled()
    entered = threading.Event()
    release = threading.Event()

    def holder():
        with governor.slot():
            release.wait(5)

    def second():
        with governor.slot():
            entered.set()

    first = threading.Thread(target=holder)
    first.start()
    time.sleep(0.05)
    waiting = threading.Thread(target=second)
    waiting.start()
    assert not entered.wait(0.2)  # limit 1, one in flight
    release.set()
    assert entered.wait(2)
    first.join()
    waiting.join()


def test_slot_released_on_exception():
    governor = ConcurrencyGovernor(1)
    with pytest.raises(RuntimeError), governor.slot():
        raise RuntimeError("boom")
    assert governor.in_flight == 0
