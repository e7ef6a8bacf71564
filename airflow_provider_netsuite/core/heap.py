"""Keep the process's long-lived objects out of full garbage collections during an extract.

An extract allocates thousands of containers a page (every item, and its ``links`` list). CPython's
collector answers with full collections, and each one walks every tracked object of the process with the
GIL held: in an Airflow task, with Airflow imported, that is 50-150 ms during which no response is read
and no new request is sent. :func:`frozen_heap` moves the objects that exist when an extract starts to
the collector's permanent generation (``gc.freeze``) and puts them back when it ends, so the collections
in between walk only what the extract itself allocated. Garbage the block leaves is collected as usual
once it ends; no object is kept alive by it.

Use it as a ``with`` block around the loop over the pages, not inside a generator: a generator abandoned
half way in a reference cycle would never be finalized while the heap is frozen, and so never thaw it.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

# Re-entrant: a collection run while the lock is held may finalize an object whose cleanup ends a block.
_lock = threading.RLock()
_depth = 0
_froze = False


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the heap as it is for the duration of the block (nested and concurrent blocks share one).

    Nothing is done when the collector is disabled or something else froze the heap already (Airflow's
    LocalExecutor forks its workers from a frozen heap); the last block to end unfreezes only what the
    first one froze.
    """
    global _depth, _froze
    with _lock:
        _depth += 1
        if _depth == 1:
            _froze = gc.isenabled() and gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _froze:
                _froze = False
                gc.unfreeze()
