"""Asynchronous jobs of the REST record service: one job per request, one task per record.

A request sent with ``Prefer: respond-async`` becomes a :class:`Job`. Its tasks run in a background
thread after a short delay, so a client really has to poll ``/services/rest/async/v1/job/<id>``. A job
remembers its ``X-NetSuite-Idempotency-Key`` so that a second submission with the same key is refused.

Design choices where NetSuite's documentation is silent (UNCONFIRMED):

- job and task IDs are decimal counters (a job's tasks are numbered from 1 in item order);
- a job's ``progress`` is ``pending`` until every task has finished, then ``succeeded`` when every task
  succeeded and ``failed`` otherwise (even when only some tasks failed: read the tasks);
- tasks of a parallel batch run on at most :data:`PARALLEL_WORKERS` threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

PARALLEL_WORKERS = 4
MAX_JOBS = 10_000

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


def utc_stamp(moment: float) -> str:
    """Return an epoch time as ISO-8601 UTC with a ``Z`` suffix, to the second."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Task:
    """One record operation of a job and, once it ran, its outcome.

    :param operation: what to run (opaque to the job store).
    :param result: what the runner returned; ``succeeded`` says whether it counts as a success.
    """

    task_id: str
    operation: Any
    progress: str = PENDING
    start_time: float | None = None
    end_time: float | None = None
    result: Any = None

    @property
    def completed(self) -> bool:
        """Tell whether the task has finished, successfully or not."""
        return self.progress != PENDING


@dataclass
class Job:
    """One asynchronous request and its tasks."""

    job_id: str
    tasks: list[Task]
    idempotency_key: str | None = None
    location: str = ""
    submitted: float = field(default_factory=time.time)

    @property
    def completed(self) -> bool:
        """Tell whether every task has finished."""
        return all(task.completed for task in self.tasks)

    @property
    def progress(self) -> str:
        """Return ``pending`` while tasks run, then ``succeeded`` or ``failed`` (see the module notes)."""
        if not self.completed:
            return PENDING
        return SUCCEEDED if all(task.progress == SUCCEEDED for task in self.tasks) else FAILED

    def task(self, task_id: str) -> Task | None:
        """Return the task with this ID, if the job has one."""
        return next((task for task in self.tasks if task.task_id == task_id), None)


class DuplicateIdempotencyKey(Exception):
    """A job was already submitted with this idempotency key; ``job`` is that earlier job."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"idempotency key already used by job {job.job_id}")
        self.job = job


# Runs one operation; returns its result and whether it succeeded.
Runner = Callable[[Any], tuple[Any, bool]]


class JobStore:
    """Hold the jobs of one emulator in memory and run their tasks in background threads.

    :param delay: seconds a job waits before its first task starts, so polling is exercised.
    """

    def __init__(self, delay: float = 0.2) -> None:
        self.delay = delay
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._keys: dict[str, str] = {}
        self._next_id = 1
        self._lock = threading.Lock()

    def submit(
        self,
        operations: list[Any],
        runner: Runner,
        *,
        location_base: str,
        parallel: bool = False,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create a job with one task per operation and start running it in the background.

        :param runner: called once per operation, in a background thread.
        :param location_base: prefix of job locations, ending in ``/job`` (a path, as NetSuite sends).
        :param parallel: run the tasks on several threads instead of one after another.
        :param idempotency_key: refuse the job if an earlier one used the same key.
        :raises DuplicateIdempotencyKey: carrying the earlier job.
        """
        with self._lock:
            if idempotency_key is not None and idempotency_key in self._keys:
                earlier = self._jobs.get(self._keys[idempotency_key])
                if earlier is not None:
                    raise DuplicateIdempotencyKey(earlier)
            job_id = str(self._next_id)
            self._next_id += 1
            tasks = [Task(str(number), operation) for number, operation in enumerate(operations, start=1)]
            job = Job(job_id, tasks, idempotency_key, f"{location_base}/{job_id}")
            self._jobs[job_id] = job
            if idempotency_key is not None:
                self._keys[idempotency_key] = job_id
            self._evict()
        worker = threading.Thread(
            target=self._run, args=(job, runner, parallel), name=f"netsuite-job-{job_id}", daemon=True
        )
        worker.start()
        log.info("Accepted async job %s with %d task(s)", job_id, len(tasks))
        return job

    def get(self, job_id: str) -> Job | None:
        """Return the job with this ID, if it is still held."""
        with self._lock:
            return self._jobs.get(job_id)

    def wait(self, job_id: str, timeout: float = 30.0) -> Job | None:
        """Block until a job has completed (for tests and admin use); return it."""
        deadline = time.monotonic() + timeout
        job = self.get(job_id)
        while job is not None and not job.completed and time.monotonic() < deadline:
            time.sleep(0.01)
        return job

    def _evict(self) -> None:
        while len(self._jobs) > MAX_JOBS:
            _, old = self._jobs.popitem(last=False)
            if old.idempotency_key is not None:
                self._keys.pop(old.idempotency_key, None)

    def _run(self, job: Job, runner: Runner, parallel: bool) -> None:
        time.sleep(self.delay)
        if parallel and len(job.tasks) > 1:
            with ThreadPoolExecutor(max_workers=PARALLEL_WORKERS) as pool:
                list(pool.map(lambda task: _run_task(task, runner), job.tasks))
        else:
            for task in job.tasks:
                _run_task(task, runner)
        log.info("Async job %s finished: %s", job.job_id, job.progress)


def _run_task(task: Task, runner: Runner) -> None:
    task.start_time = time.time()
    try:
        result, succeeded = runner(task.operation)
    except Exception:
        log.exception("Task %s failed unexpectedly", task.task_id)
        result, succeeded = None, False
    task.result = result
    task.end_time = time.time()
    task.progress = SUCCEEDED if succeeded else FAILED
