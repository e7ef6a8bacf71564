"""frozen_heap: the long-lived heap is left out of full collections during an extract, then put back."""

from __future__ import annotations

import gc
import threading

import pytest

from airflow_provider_netsuite.core.heap import frozen_heap


@pytest.fixture(autouse=True)
def _thawed():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_objects_made_before_the_block_are_frozen_and_thawed_after():
    before = object.__new__(type("Before", (), {}))
    with frozen_heap():
        assert gc.get_freeze_count() > 0
        assert not any(obj is before for obj in gc.get_objects())  # not walked by collections
    assert gc.get_freeze_count() == 0
    assert any(obj is before for obj in gc.get_objects())


def test_cyclic_garbage_made_in_the_block_is_still_collected():
    class Node:
        pass

    with frozen_heap():
        first, second = Node(), Node()
        first.other, second.other = second, first
        del first, second
        assert gc.collect() >= 2


def test_nested_and_concurrent_blocks_thaw_once_the_last_one_ends():
    inner_started, outer_may_end = threading.Event(), threading.Event()
    counts: list[int] = []

    def other_extract() -> None:
        with frozen_heap():
            inner_started.set()
            outer_may_end.wait(5)
            counts.append(gc.get_freeze_count())
        counts.append(gc.get_freeze_count())

    with frozen_heap():
        worker = threading.Thread(target=other_extract)
        worker.start()
        assert inner_started.wait(5)
        with frozen_heap():
            assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() > 0  # the other thread's block is still open
    outer_may_end.set()
    worker.join(5)
    assert counts[0] > 0
    assert counts[1] == 0


def test_a_heap_frozen_by_someone_else_stays_frozen():
    gc.freeze()
    frozen = gc.get_freeze_count()
    with frozen_heap():
        pass
    assert gc.get_freeze_count() == frozen


def test_nothing_is_done_while_the_collector_is_disabled():
    gc.disable()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_the_heap_is_thawed_when_the_block_fails():
    with pytest.raises(RuntimeError), frozen_heap():
        raise RuntimeError("the extract failed")
    assert gc.get_freeze_count() == 0
