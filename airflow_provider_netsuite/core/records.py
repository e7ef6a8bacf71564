"""Write records to NetSuite's REST record service: upsert, create or update, with exact accounting.

Every input record ends in exactly one of three states:

* **succeeded**: NetSuite answered 2xx (204 + ``Location`` for single writes; a succeeded task in batch);
* **failed**: NetSuite refused the record permanently (a 4xx such as 400 ``USER_ERROR``,
  ``INVALID_CONTENT``, ``NONEXISTENT_FIELD``, 403, 404), or the fate of a write that must not be repeated
  is unknown after a crash (``UNCERTAIN_AFTER_CRASH``); it is written to the failure report and never
  retried;
* **skipped**: refused before any request (``LOCAL_VALIDATION``: bad external ID, internal ID or body) or
  unreadable in the input (``INVALID_INPUT``); also written to the failure report.

A transient failure that outlasts the client's own retries (429 concurrency limit, 5xx, timeouts, broken
connections) is not a record failure: the run stops after the requests in flight finish, the checkpoint is
written, and the error is raised so that an Airflow task retry resumes where this run stopped.

**Checkpoint.** Beside the failure report, the directory ``<failure_path>.checkpoint/`` holds small JSON
part files, never appended to (object storage cannot append): ``run.json`` (run ID, record type, mode),
one ``outcome`` part per chunk of records (position in the input -> succeeded / failed), and an ``intent``
part written before the records that must not be repeated are sent: creates, and updates that add sublist
lines (see :func:`appends_sublist_lines`). On resume, recorded outcomes are counted again without sending
(``resumed``); such a record with an intent but no outcome may or may not have been written by NetSuite,
so it is not sent again unless ``resend_uncertain=True`` and is counted failed with
``UNCERTAIN_AFTER_CRASH``. Positions identify records, so a resumed run must read the same input in the
same order; the external ID (or internal ID) stored with each outcome is compared to detect a changed input.

When a run finishes, the failure report (JSON lines) is published at ``failure_path`` in one piece, and a
``done.json`` marker is added to the checkpoint, which is **kept**: running the same task again (an Airflow
retry after ``max_failures`` was exceeded, or a cleared task) then replays the recorded outcomes instead of
creating every record a second time. Delete the checkpoint directory, or use a new ``failure_path``, to
write the same input again.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import requests

from airflow_provider_netsuite.core.errors import (
    NetSuiteAPIError,
    NetSuiteAuthError,
    NetSuiteConcurrencyLimitError,
    NetSuiteError,
    NetSuiteTransientError,
)
from airflow_provider_netsuite.core.record_sources import InvalidInput

log = logging.getLogger(__name__)

RECORD_PATH = "/services/rest/record/v1"
MODES = ("upsert", "create", "update")
VALIDATION_LEVELS = ("ignore", "warning", "error")
LOCAL_VALIDATION = "LOCAL_VALIDATION"
INVALID_INPUT = "INVALID_INPUT"
UNCERTAIN_AFTER_CRASH = "UNCERTAIN_AFTER_CRASH"

#: A REST record type: a letter, then letters, digits and underscores (``salesOrder``, ``customrecord_x``).
RECORD_TYPE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
#: NetSuite's rule for external IDs in URLs: letters, digits, ``_`` and ``-`` only.
EXTERNAL_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,255}")
INTERNAL_ID_PATTERN = re.compile(r"[0-9]{1,20}")
SUBLIST_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")

_METHODS = {"upsert": "PUT", "create": "POST", "update": "PATCH"}
#: Submissions of one batch answered 2xx without a job ``Location`` before the run stops.
SUBMIT_ATTEMPTS = 4
_RUN_NAMESPACE = uuid.UUID("3f0b6a8e-5c1d-4f57-9a55-6b1f0c2e7d41")


class CheckpointMismatchError(NetSuiteError, ValueError):
    """Raise when a checkpoint belongs to a different write (record type, mode or input)."""


class RecordFailuresExceededError(NetSuiteError):
    """Raise when more records failed (or were skipped) than ``max_failures`` allows.

    :param result: the counts of the write; the failure report is already published.
    """

    def __init__(self, message: str, *, result: RecordWriteResult) -> None:
        self.result = result
        super().__init__(message)


# ---------------------------------------------------------------------------------------------------------
# Result


@dataclass
class RecordWriteResult:
    """Counts of one write; ``input == succeeded + failed + skipped`` always holds.

    ``succeeded`` and ``failed`` include the ``resumed`` records, whose outcome an earlier attempt recorded.
    ``requests`` and ``retries`` are the client's HTTP requests and retries during this run.
    """

    input: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    resumed: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    failure_path: str | None = None

    @property
    def failures(self) -> int:
        """Return the records not written: failed plus skipped (what ``max_failures`` limits)."""
        return self.failed + self.skipped

    def exceeded(self, max_failures: int | float) -> bool:
        """Tell whether failed plus skipped records go beyond ``max_failures``.

        :param max_failures: an ``int`` count, or a ``float`` fraction of the input in ``[0, 1)``
            (``0.05`` = up to 5 % of the records may fail). A float of 1 or more is a count.
        """
        return self.failures > allowed_failures(max_failures, self.input)

    def as_dict(self) -> dict[str, Any]:
        """Return the counts as a JSON-safe dict (for XCom)."""
        return asdict(self)

    def check(self) -> None:
        """Raise when the accounting identity does not hold (a bug, never a data problem)."""
        if self.input != self.succeeded + self.failed + self.skipped:
            raise RuntimeError(
                f"record accounting is off: input {self.input} != succeeded {self.succeeded} + failed "
                f"{self.failed} + skipped {self.skipped}"
            )


def allowed_failures(max_failures: int | float, total: int) -> float:
    """Return how many failures ``max_failures`` allows out of ``total`` records.

    :raises ValueError: ``max_failures`` is negative, a bool, or not a number.
    """
    if isinstance(max_failures, bool) or not isinstance(max_failures, (int, float)) or max_failures < 0:
        raise ValueError(f"max_failures must be a count >= 0 or a fraction in [0, 1), not {max_failures!r}")
    if isinstance(max_failures, float) and max_failures < 1:
        return max_failures * total
    return float(max_failures)


# ---------------------------------------------------------------------------------------------------------
# Storage of the checkpoint and the report (pathlib.Path or ObjectStoragePath, duck-typed)


class Folder:
    """A directory on a local disk or in object storage, used through ``/``, ``open``, ``iterdir``.

    Works with :class:`pathlib.Path` and Airflow's ``ObjectStoragePath``; object storage has no real
    directories, so ``mkdir`` failures are ignored and files are written whole, never appended to.
    """

    def __init__(self, path: Any) -> None:
        self.path = path

    def ensure(self) -> None:
        """Create the directory where the storage has directories."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except (OSError, NotImplementedError, TypeError):
            pass

    def names(self) -> list[str]:
        """Return the names of the files in the directory, sorted."""
        try:
            return sorted(child.name for child in self.path.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    def read_json(self, name: str) -> Any:
        """Return the JSON content of a file, or ``None`` when it is missing or cut short by a crash."""
        try:
            with (self.path / name).open("rb") as stream:
                return json.loads(stream.read().decode("utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def write_json(self, name: str, value: Any) -> None:
        """Write a JSON file in one piece."""
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with (self.path / name).open("wb") as stream:
            stream.write(data)


def publish_file(local: IO[bytes], target: Any) -> None:
    """Copy a local temporary file to ``target`` so that readers see the old file or the whole new one.

    The copy goes to a temporary name beside ``target`` and is renamed over it (an atomic rename on a
    local disk; object stores make a written object visible only once complete in any case).
    """
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (OSError, NotImplementedError, TypeError):
        pass
    staging = parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    local.seek(0)
    with staging.open("wb") as stream:
        while block := local.read(1 << 20):
            stream.write(block)
    try:
        staging.replace(target)
    except (AttributeError, NotImplementedError):
        staging.rename(target)


# ---------------------------------------------------------------------------------------------------------
# Checkpoint


@dataclass
class CheckpointState:
    """What earlier attempts of a write recorded.

    :param succeeded: position -> (key, internal ID) of records NetSuite accepted.
    :param failed: position -> failure report entry of records NetSuite refused.
    :param intended: positions of unrepeatable writes sent (or about to be), without an outcome yet.
    :param jobs: batch chunk number -> (async job path, idempotency key, positions in item order).
    """

    run_id: str
    succeeded: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    intended: dict[int, str | None] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    done: bool = False

    def outcome_count(self) -> int:
        """Return the number of positions with a recorded outcome."""
        return len(self.succeeded) + len(self.failed)


class Checkpoint:
    """The part files of one write, beside its failure report.

    :param folder: where the parts live (``<failure_path>.checkpoint``).
    :param identity: what this write is (record type, mode, batch); a checkpoint of another write refuses.
    """

    def __init__(self, folder: Folder, identity: dict[str, Any]) -> None:
        self.folder = folder
        self.identity = identity
        self._sequence = 0
        self._lock = threading.Lock()

    def load(self) -> CheckpointState:
        """Read every part, or start a new checkpoint; return what earlier attempts recorded."""
        meta = self.folder.read_json("run.json")
        if meta is None:
            self.folder.ensure()
            state = CheckpointState(run_id=uuid.uuid4().hex)
            self.folder.write_json("run.json", {**self.identity, "run_id": state.run_id, "version": 1})
            return state
        recorded = {key: meta.get(key) for key in self.identity}
        if recorded != self.identity:
            raise CheckpointMismatchError(
                f"the checkpoint {self.folder.path} belongs to another write ({recorded}, not "
                f"{self.identity}); remove it or choose another failure_path"
            )
        state = CheckpointState(run_id=str(meta["run_id"]))
        for name in self.folder.names():
            if name.startswith("part-"):
                self._sequence = max(self._sequence, _part_sequence(name) + 1)
                part = self.folder.read_json(name)
                if isinstance(part, dict):
                    _apply_part(state, part)
        state.done = self.folder.read_json("done.json") is not None
        return state

    def write(self, kind: str, **content: Any) -> None:
        """Write one part file (``intent``, ``job`` or ``outcome``)."""
        with self._lock:
            sequence = self._sequence
            self._sequence += 1
        name = f"part-{sequence:08d}-{kind}-{uuid.uuid4().hex[:6]}.json"
        self.folder.write_json(name, {"kind": kind, **content})

    def mark_done(self, result: RecordWriteResult) -> None:
        """Record that the write finished, with its counts."""
        self.folder.write_json("done.json", result.as_dict())


def _part_sequence(name: str) -> int:
    try:
        return int(name.split("-")[1])
    except (IndexError, ValueError):
        return 0


def _apply_part(state: CheckpointState, part: dict[str, Any]) -> None:
    kind = part.get("kind")
    if kind == "intent":
        for position, key in part.get("positions", []):
            state.intended[int(position)] = key
    elif kind == "job":
        state.jobs[int(part["chunk"])] = part
    elif kind == "outcome":
        for position, key, internal_id in part.get("succeeded", []):
            state.succeeded[int(position)] = (key, internal_id)
            state.failed.pop(int(position), None)
            state.intended.pop(int(position), None)
        for entry in part.get("failed", []):
            state.failed[int(entry["position"])] = entry
            state.intended.pop(int(entry["position"]), None)
        for position in part.get("unsent", []):
            state.intended.pop(int(position), None)
        if part.get("chunk") is not None and part.get("batch_done"):
            state.jobs.pop(int(part["chunk"]), None)


# ---------------------------------------------------------------------------------------------------------
# Preparing one record


@dataclass
class PreparedRecord:
    """One input record checked and ready to send.

    :param position: 0-based position in the input (the checkpoint's identifier for it).
    :param key: the external ID (upsert, create) or internal ID (update) the record is addressed by.
    :param body: the JSON object to send.
    :param repeatable: whether sending it twice does no harm (an upsert, an update without sublist lines
        to add); a create or an update that adds sublist lines is never repeated after a 5xx, a timeout or
        a broken connection.
    """

    position: int
    record: dict[str, Any]
    key: str | None
    body: dict[str, Any]
    payload: bytes
    repeatable: bool = True


class Refused(Exception):
    """A record refused by local validation; the message names the problem."""


def _text_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Refused(f"{what} must be a string or an integer, not {type(value).__name__}")
    return str(value)


def check_external_id(value: Any) -> str:
    """Return the external ID as text, or raise :class:`Refused` naming what is wrong with it."""
    text = _text_id(value, "the external ID")
    if not text:
        raise Refused("the external ID is empty")
    if len(text) > 255:
        raise Refused(f"the external ID is {len(text)} characters long (at most 255)")
    if not EXTERNAL_ID_PATTERN.fullmatch(text):
        raise Refused(
            "the external ID may hold only letters A-Z/a-z, digits, '_' and '-' (NetSuite cannot address "
            "other characters in a URL)"
        )
    return text


def check_internal_id(value: Any) -> str:
    """Return the internal ID as text, or raise :class:`Refused` when it is not a positive number."""
    text = _text_id(value, "the internal ID").strip()
    if not INTERNAL_ID_PATTERN.fullmatch(text):
        raise Refused("the internal ID must be digits only")
    return text


def _is_sublist(value: Any) -> bool:
    """Tell whether a body field holds sublist lines: a list, or an object with ``items``."""
    return isinstance(value, list) or (isinstance(value, dict) and "items" in value)


def appends_sublist_lines(body: dict[str, Any], replace: Iterable[str]) -> bool:
    """Tell whether a PATCH of ``body`` may add sublist lines, so that sending it twice adds them twice.

    Without ``?replace=``, NetSuite appends the lines of a non-keyed sublist to the record's lines. The body
    cannot tell keyed from non-keyed sublists, so any sublist not named in ``replace`` counts.
    """
    replaced = set(replace)
    return any(_is_sublist(value) and name not in replaced for name, value in body.items())


def encode_body(body: dict[str, Any]) -> bytes:
    """Serialise a record body as UTF-8 JSON, keeping non-ASCII characters as they are."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise Refused(f"the record cannot be serialised as JSON: {exc}") from None


# ---------------------------------------------------------------------------------------------------------
# Failure report


class FailureReport:
    """Collect failure entries in a local temporary file; publish them in one piece at the end."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(mode="w+b")  # closed in close()
        self._lock = threading.Lock()
        self.count = 0

    def add(self, entry: dict[str, Any]) -> None:
        """Append one entry (a JSON line)."""
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        # A lone surrogate (a record refused for it) is written as its JSON escape, not crash the run.
        data = line.encode("utf-8", errors="backslashreplace")
        with self._lock:
            self._file.write(data)
            self.count += 1

    def publish(self, target: Any, publisher: Callable[[IO[bytes], Any], None] = publish_file) -> None:
        """Write the report to ``target`` (replacing an older one) in one piece."""
        with self._lock:
            self._file.flush()
            self._file.seek(0)
            publisher(self._file, target)

    def close(self) -> None:
        """Delete the local temporary file."""
        self._file.close()


def failure_entry(
    position: int,
    record: Any,
    *,
    code: str,
    detail: str,
    status: int | None = None,
    error_path: str | None = None,
    key: str | None = None,
    line: int | None = None,
) -> dict[str, Any]:
    """Build one failure report entry: where the record was, what NetSuite (or the check) said, the record."""
    return {
        "position": position,
        "line": line,
        "key": key,
        "status": status,
        "code": code,
        "detail": detail,
        "error_path": error_path,
        "record": record,
    }


def api_failure(prepared: PreparedRecord, error: NetSuiteAPIError) -> dict[str, Any]:
    """Build the failure entry of a record NetSuite refused."""
    return failure_entry(
        prepared.position,
        prepared.record,
        code=error.code or f"HTTP_{error.status}",
        detail=error.detail or str(error),
        status=error.status,
        error_path=error.error_path,
        key=prepared.key,
    )


def is_permanent(error: BaseException) -> bool:
    """Tell whether an error refuses one record for good (a 4xx other than 401, 408 and 429)."""
    if not isinstance(error, NetSuiteAPIError):
        return False
    if isinstance(error, (NetSuiteConcurrencyLimitError, NetSuiteTransientError)):
        return False
    return error.status is not None and 400 <= error.status < 500 and error.status not in (401, 408, 429)


def internal_id_from_location(location: str | None) -> str | None:
    """Return the internal ID at the end of a ``Location`` URL (``.../record/v1/customer/647`` -> ``647``)."""
    if not location:
        return None
    last = location.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    return last or None


def written_record_id(response: requests.Response) -> str | None:
    """Return the internal ID of a written record: from ``Location``, else from a JSON body's ``id``.

    NetSuite answers a write with 204 and ``Location``; an answer of 200 or 201 with the record as JSON
    (documented for some sublist examples) is read too. Any other body (text, HTML, empty) gives ``None``.
    """
    found = internal_id_from_location(response.headers.get("Location"))
    if found is not None or not response.content:
        return found
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return str(value) if value is not None else None


def relative_path(location: str) -> str:
    """Return the part of a NetSuite URL from ``/services/rest/`` on (the client adds its own base URL)."""
    index = location.find("/services/rest/")
    return location[index:] if index >= 0 else location


# ---------------------------------------------------------------------------------------------------------
# Outcomes of one chunk


@dataclass
class ChunkOutcome:
    """What happened to the records of one chunk during this run."""

    succeeded: list[tuple[PreparedRecord, str | None]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)
    error: BaseException | None = None
    #: Records of a batch whose task failed transiently, to submit again (no outcome yet).
    again: list[tuple[PreparedRecord, NetSuiteAPIError]] = field(default_factory=list)

    def part(self, chunk: int, batch_done: bool = False) -> dict[str, Any]:
        """Return the checkpoint part that records this outcome."""
        return {
            "chunk": chunk,
            "succeeded": [[p.position, p.key, internal_id] for p, internal_id in self.succeeded],
            "failed": self.failed,
            "unsent": self.unsent,
            "batch_done": batch_done,
        }


# ---------------------------------------------------------------------------------------------------------
# Senders: one request per record, or asynchronous batches


class SingleRecordSender:
    """Send each record in its own request, ``max_concurrency`` at a time.

    Upsert: ``PUT /services/rest/record/v1/<recordType>/eid:<externalId>``; create: ``POST
    /services/rest/record/v1/<recordType>``; update: ``PATCH .../<recordType>/<internalId>``. NetSuite
    answers 204 (201 has been documented too) with the new or updated record in ``Location``.
    """

    chunk_size = 200

    def __init__(self, writer: RecordWriter, executor: ThreadPoolExecutor) -> None:
        self.writer = writer
        self.executor = executor
        # Shared by every chunk: the next chunk is already queued while one finishes, and must stop too.
        self.stop = threading.Event()

    def send_chunk(self, chunk: int, records: list[PreparedRecord]) -> ChunkOutcome:
        """Send the records of one chunk concurrently; stop starting new ones after a transient error."""
        return self.collect(records, self.start(chunk, records))

    def start(self, chunk: int, records: list[PreparedRecord]) -> list[Future[tuple[str, Any]]]:
        """Queue the records of one chunk to the workers (after the intent part of the unrepeatable ones).

        Call it from one thread for every chunk, so that a chunk's records are all queued before the
        next chunk's.
        """
        writer = self.writer
        unrepeatable = [[p.position, p.key] for p in records if not p.repeatable]
        if unrepeatable and writer.checkpoint is not None:
            writer.checkpoint.write("intent", chunk=chunk, positions=unrepeatable)
        return [self.executor.submit(self._send_one, prepared, self.stop) for prepared in records]

    def collect(self, records: list[PreparedRecord], futures: list[Future[tuple[str, Any]]]) -> ChunkOutcome:
        """Wait for the records queued by :meth:`start` and sort them into the chunk's outcome."""
        outcome = ChunkOutcome()
        results = (future.result() for future in futures)
        for prepared, (status, value) in zip(records, results, strict=True):
            if status == "ok":
                outcome.succeeded.append((prepared, value))
            elif status == "failed":
                outcome.failed.append(value)
            elif status == "unsent":
                outcome.unsent.append(prepared.position)
            else:
                if status == "refused":
                    outcome.unsent.append(prepared.position)
                outcome.error = outcome.error or value
        return outcome

    def _send_one(self, prepared: PreparedRecord, stop: threading.Event) -> tuple[str, Any]:
        if stop.is_set():
            return "unsent", None
        try:
            response = self.writer.send(prepared)
        except BaseException as exc:
            if is_permanent(exc):
                return "failed", api_failure(prepared, exc)  # type: ignore[arg-type]
            stop.set()
            # A 429 or a refused login is answered before NetSuite does anything: the record was not written.
            if isinstance(exc, (NetSuiteConcurrencyLimitError, NetSuiteAuthError)):
                return "refused", exc
            return "error", exc
        return "ok", written_record_id(response)


class BatchSender:
    """Send up to 100 records per asynchronous batch request and map the job's tasks back to them.

    The request is ``PUT`` (upsert), ``POST`` (create) or ``PATCH`` (update) on
    ``/services/rest/record/v1/<recordType>`` with ``Prefer: respond-async``, ``Content-Type:
    application/vnd.oracle.resource+json; type=collection``, an ``X-NetSuite-Idempotency-Key`` derived from
    the run ID and the chunk number (so a resubmission after a crash reuses it), and ``{"items": [...]}``.
    NetSuite answers 202 with ``Location: .../services/rest/async/v1/job/<id>``; a 400 ``IDEMPOTENCY_ERROR``
    carrying a ``Location`` names the job submitted earlier with the same key, which is followed.

    The job is polled until ``"completed": true``; then ``GET .../job/<id>/task`` lists one task per record,
    assumed to be in item order, e.g.::

        {"items": [{"links": [{"rel": "self", "href": ".../async/v1/job/7/task/1"}]}, ...]}

    and each task (``{"completed": true, "progress": "succeeded"}``) is read, with ``.../task/<id>/result``
    holding NetSuite's error body when a record failed. Oracle documents these shapes only in part, so they
    are parsed defensively: task ``id`` fields and ``next`` links are accepted, and a job whose task count
    differs from its item count marks its records failed with ``BATCH_RESULT_UNMAPPED`` (check NetSuite)
    rather than guessing which record a task belongs to.
    """

    chunk_size = 100
    #: Jobs per chunk: the first, and new ones for records whose task failed transiently.
    rounds = 4

    def __init__(self, writer: RecordWriter, executor: ThreadPoolExecutor) -> None:
        self.writer = writer
        self.executor = executor

    def send_chunk(self, chunk: int, records: list[PreparedRecord]) -> ChunkOutcome:
        """Submit (or find again) the chunk's job, wait for it and map its tasks to the records.

        Records whose task failed transiently (its result is a 5xx or 429) are submitted again in a new job
        with a new idempotency key, up to :attr:`rounds` jobs in all, unless they are not repeatable
        (creates, updates adding sublist lines): those are reported. The outcomes settled before each new
        job are checkpointed first, so a task retry resumes with the records still open.
        """
        writer = self.writer
        earlier = writer.state.jobs.get(chunk) if writer.state else None
        attempt = int(earlier.get("round", 0)) if earlier else 0
        total = ChunkOutcome()
        try:
            while True:
                outcome = self._send_round(chunk, records, earlier, attempt)
                attempt, earlier = attempt + 1, None
                self._give_up(outcome, last=attempt >= self.rounds)
                total.succeeded += outcome.succeeded
                total.failed += outcome.failed
                if not outcome.again:
                    return total
                if writer.checkpoint is not None:
                    writer.checkpoint.write("outcome", **outcome.part(chunk))
                log.warning(
                    "%d records of batch chunk %d failed transiently inside the job; submitting them again "
                    "(job %d of %d)",
                    len(outcome.again),
                    chunk,
                    attempt + 1,
                    self.rounds,
                )
                records = [prepared for prepared, _ in outcome.again]
                writer.sleep(writer.poll_interval)
        except BaseException as exc:
            if is_permanent(exc):
                total.failed += [api_failure(p, exc) for p in records]  # type: ignore[arg-type]
                return total
            total.error = exc
            return total

    def _send_round(
        self, chunk: int, records: list[PreparedRecord], earlier: dict[str, Any] | None, attempt: int
    ) -> ChunkOutcome:
        """Follow the job recorded for the chunk, or submit one; wait for it and collect its tasks."""
        if earlier and earlier.get("job"):
            records = self._reorder(records, earlier.get("positions"))
            job = earlier["job"]
        else:
            if earlier:
                records = self._reorder(records, earlier.get("positions"))
            key = earlier["key"] if earlier else self._idempotency_key(chunk, attempt)
            job = self._submit(chunk, records, key, attempt)
            if isinstance(job, ChunkOutcome):
                return job
        self._wait(job)
        return self._collect(job, records)

    def _idempotency_key(self, chunk: int, attempt: int) -> str:
        # The same write, chunk and attempt give the same key, so a resubmission after a crash is recognised.
        name = f"{self.writer.run_id}:{chunk}" + (f":{attempt}" if attempt else "")
        return str(uuid.uuid5(_RUN_NAMESPACE, name))

    def _give_up(self, outcome: ChunkOutcome, last: bool) -> None:
        """Report the records that failed transiently and are not to be submitted again (all, if ``last``)."""
        again = []
        for prepared, error in outcome.again:
            if last or not prepared.repeatable:
                outcome.failed.append(self._transient_failure(prepared, error))
            else:
                again.append((prepared, error))
        outcome.again = again

    def _transient_failure(self, prepared: PreparedRecord, error: NetSuiteAPIError) -> dict[str, Any]:
        if self.writer.mode == "create":
            why = "a create is not submitted again, since NetSuite may have created the record"
        elif not prepared.repeatable:
            why = "an update adding sublist lines is not submitted again, since NetSuite may have added them"
        else:
            why = f"it failed in each of {self.rounds} jobs"
        entry = api_failure(prepared, error)
        entry["detail"] = f"{entry['detail']} (the batch task failed transiently; {why}: check the record)"
        return entry

    @staticmethod
    def _reorder(records: list[PreparedRecord], positions: list[int] | None) -> list[PreparedRecord]:
        if not positions:
            return records
        by_position = {p.position: p for p in records}
        if set(by_position) != {int(position) for position in positions}:
            raise CheckpointMismatchError(
                "the input changed since a batch was submitted: its records are not the ones recorded in "
                "the checkpoint (remove the checkpoint to start over)"
            )
        return [by_position[int(position)] for position in positions]

    def _submit(
        self, chunk: int, records: list[PreparedRecord], key: str, attempt: int
    ) -> str | ChunkOutcome:
        writer = self.writer
        positions = [p.position for p in records]
        recorded = {"chunk": chunk, "key": key, "positions": positions, "round": attempt}
        if writer.checkpoint is not None:
            writer.checkpoint.write("job", **recorded, job=None)
        headers = {
            "Prefer": "respond-async",
            "Content-Type": "application/vnd.oracle.resource+json; type=collection",
            "X-NetSuite-Idempotency-Key": key,
        }
        payload = json.dumps({"items": [writer.batch_item(p) for p in records]}, ensure_ascii=False)
        location = self._post_batch(chunk, payload.encode("utf-8"), headers)
        job = relative_path(location)
        if writer.checkpoint is not None:
            writer.checkpoint.write("job", **recorded, job=job)
        return job

    def _post_batch(self, chunk: int, payload: bytes, headers: dict[str, str]) -> str:
        """Submit a batch and return its job's ``Location``, following an earlier submission's job.

        NetSuite accepts a batch with 202 and ``Location``. A 2xx without ``Location`` (a proxy's page, an
        answer cut short) says nothing about the job, so the same submission is sent again: its idempotency
        key makes NetSuite answer ``IDEMPOTENCY_ERROR`` with the earlier job if the first one was accepted.
        """
        writer = self.writer
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                response = writer.call(
                    _METHODS[writer.mode], writer.collection_path(), data=payload, headers=headers
                )
                location = response.headers.get("Location")
            except NetSuiteAPIError as exc:
                location = _header(exc.headers, "Location") if exc.code == "IDEMPOTENCY_ERROR" else None
                if not location:
                    raise
                log.info("batch chunk %d was submitted before; following its job", chunk)
            if location:
                return location
            log.warning(
                "NetSuite answered batch chunk %d with HTTP %d and no Location (attempt %d of %d); "
                "submitting it again with the same idempotency key",
                chunk,
                response.status_code,
                attempt,
                SUBMIT_ATTEMPTS,
            )
            writer.sleep(writer.poll_interval * attempt)
        raise NetSuiteTransientError(
            f"NetSuite accepted batch chunk {chunk} {SUBMIT_ATTEMPTS} times without a Location header",
            status=202,
        )

    def _wait(self, job: str) -> None:
        writer = self.writer
        deadline = time.monotonic() + writer.job_timeout
        delay = writer.poll_interval
        while True:
            body = writer.get_json(job)
            if _truthy(body.get("completed")):
                return
            if time.monotonic() + delay > deadline:
                raise NetSuiteTransientError(
                    f"the asynchronous job {job} did not complete within {writer.job_timeout:.0f} s; "
                    "a retry of the task polls it again"
                )
            writer.sleep(delay)
            delay = min(delay * 2, writer.poll_cap)

    def _task_paths(self, job: str) -> list[str]:
        writer = self.writer
        paths: list[str] = []
        page: str | None = job.rstrip("/") + "/task"
        while page:
            body = writer.get_json(page)
            for item in body.get("items") or []:
                href = _link(item, "self")
                if href is None and isinstance(item, dict) and item.get("id") is not None:
                    href = f"{job.rstrip('/')}/task/{item['id']}"
                if href:
                    paths.append(relative_path(href))
            following = _link(body, "next")
            page = relative_path(following) if following and _truthy(body.get("hasMore", True)) else None
        return paths

    def _collect(self, job: str, records: list[PreparedRecord]) -> ChunkOutcome:
        tasks = self._task_paths(job)
        outcome = ChunkOutcome()
        if len(tasks) != len(records):
            detail = (
                f"the asynchronous job {job} reported {len(tasks)} tasks for {len(records)} records, so its "
                "results cannot be matched to records; check these records in NetSuite"
            )
            outcome.failed = [
                failure_entry(p.position, p.record, code="BATCH_RESULT_UNMAPPED", detail=detail, key=p.key)
                for p in records
            ]
            return outcome
        for prepared, task in zip(records, tasks, strict=True):
            self._task_outcome(prepared, task, outcome)
        return outcome

    def _task_outcome(self, prepared: PreparedRecord, task: str, outcome: ChunkOutcome) -> None:
        body = self.writer.get_json(task)
        progress = str(body.get("progress") or "").lower()
        if progress == "succeeded":
            outcome.succeeded.append((prepared, _record_id(body)))
            return
        # NetSuite documents "succeeded" only: a completed task with any other progress ("failed",
        # "error"...) has its error in its result.
        ended_otherwise = _truthy(body.get("completed")) and progress not in ("", "pending", "running")
        if progress != "failed" and not ended_otherwise:
            detail = f"the batch task {task} ended as {progress or 'unknown'}; check this record in NetSuite"
            outcome.failed.append(
                failure_entry(
                    prepared.position,
                    prepared.record,
                    code="BATCH_TASK_INCOMPLETE",
                    detail=detail,
                    key=prepared.key,
                )
            )
            return
        self._task_failure(prepared, task, outcome)

    def _task_failure(self, prepared: PreparedRecord, task: str, outcome: ChunkOutcome) -> None:
        # The result holds the operation's answer: a 5xx or 429 there means NetSuite did not write the
        # record this time, so it is read once (not retried) and the record goes into the next job.
        try:
            result = self.writer.get_json(task.rstrip("/") + "/result", retry_transient=False)
        except NetSuiteAPIError as exc:
            if is_permanent(exc):
                outcome.failed.append(api_failure(prepared, exc))
            elif isinstance(exc, (NetSuiteAuthError, NetSuiteConcurrencyLimitError)):
                raise
            else:
                outcome.again.append((prepared, exc))
            return
        status = result.get("status")
        status = int(status) if isinstance(status, (int, str)) and str(status).isdigit() else None
        if status is not None and (status >= 500 or status == 429):
            entry = self._failure_from_result(prepared, result, status)
            error = NetSuiteTransientError(
                f"the batch task {task} answered {status}",
                status=status,
                code=entry["code"],
                detail=entry["detail"],
            )
            outcome.again.append((prepared, error))
            return
        outcome.failed.append(self._failure_from_result(prepared, result, status))

    @staticmethod
    def _failure_from_result(
        prepared: PreparedRecord, result: dict[str, Any], status: int | None
    ) -> dict[str, Any]:
        details = result.get("o:errorDetails")
        first = details[0] if isinstance(details, list) and details and isinstance(details[0], dict) else {}
        return failure_entry(
            prepared.position,
            prepared.record,
            code=first.get("o:errorCode") or result.get("o:errorCode") or "BATCH_TASK_FAILED",
            detail=first.get("detail") or result.get("title") or "the batch task failed",
            status=status,
            error_path=first.get("o:errorPath"),
            key=prepared.key,
        )


def _header(headers: Any, name: str) -> str | None:
    """Return a header's value whatever the case of its name (HTTP/2 and many servers send lower case)."""
    wanted = name.lower()
    return next((str(value) for key, value in (headers or {}).items() if key.lower() == wanted), None)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "t"))


def _link(body: Any, rel: str) -> str | None:
    links = body.get("links") if isinstance(body, dict) else None
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("rel") == rel and link.get("href"):
            return str(link["href"])
    return None


def _record_id(task: dict[str, Any]) -> str | None:
    for key in ("recordId", "internalId"):
        if task.get(key) is not None:
            return str(task[key])
    return None


# ---------------------------------------------------------------------------------------------------------
# The writer


class RecordWriter:
    """Write records of one record type to NetSuite, exactly accounted, resumable after a task retry.

    :param client: a ``NetSuiteClient`` (or anything with its ``request`` method).
    :param record_type: the REST record type (``customer``, ``salesOrder``, ``customrecord_abc``).
    :param mode: ``upsert`` (``PUT .../eid:<externalId>``), ``create`` (``POST``) or ``update``
        (``PATCH .../<internalId>``).
    :param external_id_field: the input field that holds the external ID. In upsert mode it goes into the
        URL, and that field, an ``externalId`` key and a read-only ``id`` are dropped from the body (the URL
        is authoritative); in create mode it is sent as the body's ``externalId``. Other fields are sent
        unchanged.
    :param id_field: the input field that holds the internal ID (update mode); an ``id`` key is dropped
        from the body because NetSuite treats it as read-only.
    :param replace: sublists to replace instead of merge (``?replace=item,addressbook``). In update mode a
        record whose body holds another sublist (a list, or an object with ``items``) may have lines
        appended, so it is handled like a create: never repeated after a 5xx, a timeout or a broken
        connection, and reported ``UNCERTAIN_AFTER_CRASH`` when an earlier attempt left its fate unknown.
    :param property_name_validation: ``X-NetSuite-PropertyNameValidation`` (``ignore``, ``warning``,
        ``error``); NetSuite's default (``warning``) when ``None``.
    :param property_value_validation: ``X-NetSuite-PropertyValueValidation``; default ``error``.
    :param max_concurrency: requests in flight at once (the client's governor may lower it after 429s).
    :param failure_path: where to publish the failure report (a ``pathlib.Path`` or ``ObjectStoragePath``);
        ``None`` writes no report and keeps no checkpoint (failures are still counted and logged).
    :param checkpoint: the checkpoint directory; default ``<failure_path>.checkpoint``; ``False`` for none.
    :param batch: send asynchronous batches of up to 100 records instead of one request per record.
    :param resend_uncertain: send again the creates (and updates adding sublist lines) whose fate an
        earlier crash left unknown (they may then exist twice in NetSuite, or have their lines twice).
    :param chunk_size: records per checkpoint part (at most 100 in batch mode).
    :param progress_interval: seconds between INFO progress lines.
    :param poll_interval: first wait between polls of an asynchronous job; doubles up to ``poll_cap``.
    :param job_timeout: seconds to wait for one asynchronous job before stopping the run.
    :param publish: ``publish(local_file, target)`` copies the finished report to ``failure_path``; by
        default :func:`publish_file` (the Airflow operator passes its object-storage publisher).
    :param sleep: the sleep function between polls (tests replace it).
    """

    def __init__(
        self,
        client: Any,
        record_type: str,
        *,
        mode: str = "upsert",
        external_id_field: str = "externalId",
        id_field: str = "id",
        replace: Iterable[str] | str | None = None,
        property_name_validation: str | None = None,
        property_value_validation: str | None = None,
        max_concurrency: int = 4,
        failure_path: Any = None,
        checkpoint: Any = None,
        batch: bool = False,
        resend_uncertain: bool = False,
        chunk_size: int | None = None,
        progress_interval: float = 5.0,
        poll_interval: float = 1.0,
        poll_cap: float = 30.0,
        job_timeout: float = 3600.0,
        publish: Callable[[IO[bytes], Any], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(record_type, str) or not RECORD_TYPE_PATTERN.fullmatch(record_type):
            raise ValueError(
                f"record_type {record_type!r} is not a REST record type name (letters, digits and '_', "
                "starting with a letter, e.g. customer, salesOrder, customrecord_abc)"
            )
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError("max_concurrency must be a positive integer")
        self.client = client
        self.record_type = record_type
        self.mode = mode
        self.external_id_field = external_id_field
        self.id_field = id_field
        self.replace = _sublists(replace)
        self.headers = _validation_headers(property_name_validation, property_value_validation)
        self.max_concurrency = max_concurrency
        self.failure_path = failure_path
        self.batch = bool(batch)
        self.resend_uncertain = resend_uncertain
        limit = BatchSender.chunk_size if self.batch else 10_000
        self.chunk_size = min(chunk_size or (BatchSender.chunk_size if self.batch else 200), limit)
        self.progress_interval = progress_interval
        self.poll_interval = poll_interval
        self.poll_cap = poll_cap
        self.job_timeout = job_timeout
        self.publish = publish or publish_file
        self.sleep = sleep
        self.checkpoint = self._make_checkpoint(failure_path, checkpoint)
        self.state: CheckpointState | None = None
        self.run_id = uuid.uuid4().hex

    def _make_checkpoint(self, failure_path: Any, checkpoint: Any) -> Checkpoint | None:
        if checkpoint is False or (checkpoint is None and failure_path is None):
            return None
        if checkpoint is None:
            checkpoint = failure_path.parent / f"{failure_path.name}.checkpoint"
        identity = {"record_type": self.record_type, "mode": self.mode, "batch": self.batch}
        return Checkpoint(Folder(checkpoint), identity)

    # -- requests

    def record_path(self, key: str | None = None) -> str:
        """Return the path of the record type, or of one record (``eid:<externalId>`` or internal ID)."""
        base = f"{RECORD_PATH}/{self.record_type}"
        if self.mode == "upsert":
            return f"{base}/eid:{key}"
        if self.mode == "update":
            return f"{base}/{key}"
        return base

    def collection_path(self) -> str:
        """Return the path batch requests go to."""
        return f"{RECORD_PATH}/{self.record_type}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request through the client, with the write's headers and ``replace`` parameter."""
        headers = {"Content-Type": "application/json", **self.headers, **kwargs.pop("headers", {})}
        params = {"replace": ",".join(self.replace)} if self.replace else None
        return self.client.request(method, path, params=params, headers=headers, **kwargs)

    def send(self, prepared: PreparedRecord) -> requests.Response:
        """Send one record; the client repeats it after a transient failure only when it is repeatable.

        A 429 is always repeated (NetSuite refused the request before doing anything); a 5xx, a timeout or
        a broken connection only for a repeatable record (an upsert, an update adding no sublist lines).
        NetSuite answers a write with 204 and no body, sometimes 201 with the record as JSON; a 2xx with no
        body, complete JSON or plain text is success, and the record ID is read from it where it can be.
        An HTML page or JSON cut short is not NetSuite's answer (a proxy or a broken connection gave it, and
        the write may not have happened): it is treated like a 5xx.
        """
        return self.call(
            _METHODS[self.mode],
            self.record_path(prepared.key),
            data=prepared.payload,
            retry_transient=prepared.repeatable,
            expect_json=True,
            accept_text=True,
        )

    def get_json(self, path: str, retry_transient: bool = True) -> dict[str, Any]:
        """GET a JSON object (asynchronous job, task or result).

        :param retry_transient: set False to have a 5xx answer raised at once instead of retried.
        """
        response = self.client.request("GET", path, expect_json=True, retry_transient=retry_transient)
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return body if isinstance(body, dict) else {}

    def batch_item(self, prepared: PreparedRecord) -> dict[str, Any]:
        """Return the item of a batch request: the body plus ``externalId`` (PUT) or ``id`` (PATCH)."""
        if self.mode == "upsert":
            return {**prepared.body, "externalId": prepared.key}
        if self.mode == "update":
            return {**prepared.body, "id": prepared.key}
        return prepared.body

    # -- preparing

    def prepare(self, position: int, record: Any) -> PreparedRecord:
        """Check one record locally and build what is sent; raise :class:`Refused` naming the problem."""
        if not isinstance(record, dict):
            raise Refused(f"the record is a {type(record).__name__}, not a JSON object")
        body = dict(record)
        key: str | None = None
        if self.mode == "upsert":
            if record.get(self.external_id_field) in (None, ""):
                raise Refused(f"the external ID field {self.external_id_field!r} is missing or empty")
            key = check_external_id(record[self.external_id_field])
            for name in ("externalId", self.external_id_field, "id"):
                body.pop(name, None)
        elif self.mode == "create":
            body.pop("id", None)  # read-only: NetSuite assigns it and refuses a body that sets it
            if record.get(self.external_id_field) not in (None, ""):
                key = check_external_id(record[self.external_id_field])
                body.pop(self.external_id_field, None)
                body["externalId"] = key
        else:
            if record.get(self.id_field) in (None, ""):
                raise Refused(f"the internal ID field {self.id_field!r} is missing or empty")
            key = check_internal_id(record[self.id_field])
            body.pop("id", None)
            if self.id_field != "id":
                body.pop(self.id_field, None)
        return PreparedRecord(position, record, key, body, encode_body(body), self._repeatable(body))

    def _repeatable(self, body: dict[str, Any]) -> bool:
        if self.mode == "create":
            return False
        return self.mode != "update" or not appends_sublist_lines(body, self.replace)

    # -- the run

    def write(self, records: Iterable[Any]) -> RecordWriteResult:
        """Write every record; return the counts after publishing the failure report.

        :param records: dicts, or :class:`~airflow_provider_netsuite.core.record_sources.InvalidInput`
            items from :func:`~airflow_provider_netsuite.core.record_sources.iter_records`.
        :raises NetSuiteConcurrencyLimitError: the concurrency limit outlasted the client's retries (the
            checkpoint is written first; a retry resumes).
        :raises NetSuiteTransientError: 5xx, timeouts or broken connections outlasted the retries.
        """
        run = _Run(self)
        try:
            return run.execute(records)
        finally:
            run.report.close()


def _sublists(replace: Iterable[str] | str | None) -> list[str]:
    if replace is None:
        return []
    names = [name.strip() for name in (replace.split(",") if isinstance(replace, str) else replace)]
    for name in names:
        if not SUBLIST_PATTERN.fullmatch(name):
            raise ValueError(f"replace: {name!r} is not a sublist name")
    return names


def _validation_headers(name_level: str | None, value_level: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for header, level in (
        ("X-NetSuite-PropertyNameValidation", name_level),
        ("X-NetSuite-PropertyValueValidation", value_level),
    ):
        if level is None:
            continue
        if str(level).lower() not in VALIDATION_LEVELS:
            raise ValueError(f"{header} must be one of {', '.join(VALIDATION_LEVELS)}, not {level!r}")
        headers[header] = str(level).lower()
    return headers


class _Run:
    """One execution of :meth:`RecordWriter.write`: reads the input chunk by chunk and keeps the counts."""

    def __init__(self, writer: RecordWriter) -> None:
        self.writer = writer
        self.result = RecordWriteResult(failure_path=_text(writer.failure_path))
        self.report = FailureReport()
        self.started = time.monotonic()
        self.last_progress = self.started
        stats = getattr(writer.client, "stats", None)
        self.stats_before = (getattr(stats, "requests", 0), getattr(stats, "retries", 0))

    def execute(self, records: Iterable[Any]) -> RecordWriteResult:
        writer = self.writer
        writer.state = writer.checkpoint.load() if writer.checkpoint is not None else None
        if writer.state is not None:
            writer.run_id = writer.state.run_id
            self._log_resume(writer.state)
        log.info(
            "writing %s records (%s%s) with up to %d requests in flight",
            writer.record_type,
            writer.mode,
            ", asynchronous batches" if writer.batch else "",
            writer.max_concurrency,
        )
        with (
            ThreadPoolExecutor(
                max_workers=writer.max_concurrency, thread_name_prefix="netsuite-write"
            ) as pool,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="netsuite-chunk") as chunks,
        ):
            if writer.batch:
                # One worker per batch job: up to max_concurrency jobs are submitted or polled at a time.
                batches = BatchSender(writer, pool)
                self._pipeline(records, lambda chunk, todo: pool.submit(batches.send_chunk, chunk, todo))
            else:
                # Records are queued here, chunk after chunk, and each chunk's outcome is collected in a
                # thread of its own, two chunks at a time: the next chunk's records are already queued
                # when the current one's slowest record returns, so no worker idles at a chunk's end.
                singles = SingleRecordSender(writer, pool)
                self._pipeline(
                    records,
                    lambda chunk, todo: chunks.submit(singles.collect, todo, singles.start(chunk, todo)),
                    depth=2,
                )
        return self._finish()

    def _log_resume(self, state: CheckpointState) -> None:
        if state.done:
            log.info("this write already finished; replaying its %d recorded outcomes", state.outcome_count())
        elif state.outcome_count() or state.intended or state.jobs:
            log.info(
                "resuming: %d outcomes recorded, %d records sent without a recorded outcome",
                state.outcome_count(),
                len(state.intended),
            )

    def _pipeline(
        self,
        records: Iterable[Any],
        submit: Callable[[int, list[PreparedRecord]], Future[ChunkOutcome]],
        depth: int | None = None,
    ) -> None:
        """Send chunk after chunk with ``depth`` chunks in flight; record outcomes in chunk order.

        No chunk waits for another to finish before it starts, so workers never idle at a chunk's end.
        After a transient error no new chunk is started; the chunks in flight finish and are recorded
        (their unstarted records as unsent) before the first error is raised.
        """
        depth = depth or self.writer.max_concurrency
        pending: deque[tuple[int, Future[ChunkOutcome]]] = deque()
        errors: list[BaseException | None] = []
        for chunk, items in _chunks(records, self.writer.chunk_size):
            to_send = self._plan(chunk, items)
            if to_send:
                pending.append((chunk, submit(chunk, to_send)))
            while pending and (len(pending) >= depth or pending[0][1].done()):
                errors.append(self._settle(*pending.popleft()))
            self._progress()
            if any(errors):
                break
        while pending:
            errors.append(self._settle(*pending.popleft()))
        self._raise_first(errors)
        self._progress()

    def _settle(self, chunk: int, future: Future[ChunkOutcome]) -> BaseException | None:
        return self._record_outcome(chunk, future.result(), batch=self.writer.batch)

    @staticmethod
    def _raise_first(errors: list[BaseException | None]) -> None:
        for error in errors:
            if error is not None:
                raise error

    def _plan(self, chunk: int, items: list[tuple[int, Any]]) -> list[PreparedRecord]:
        """Count the chunk's skipped, resumed and uncertain records; return the ones to send."""
        to_send, uncertain = [], []
        for position, item in items:
            self.result.input += 1
            if isinstance(item, InvalidInput):
                self._skip(
                    failure_entry(
                        position, item.excerpt, code=INVALID_INPUT, detail=item.reason, line=item.line
                    )
                )
                continue
            try:
                prepared = self.writer.prepare(position, item)
            except Refused as exc:
                self._skip(failure_entry(position, item, code=LOCAL_VALIDATION, detail=str(exc)))
                continue
            if self._resumed(prepared):
                continue
            if self._is_uncertain(prepared):
                uncertain.append(self._uncertain_entry(prepared))
                continue
            to_send.append(prepared)
        if uncertain:
            self._record_uncertain(chunk, uncertain)
        return to_send

    def _skip(self, entry: dict[str, Any]) -> None:
        self.result.skipped += 1
        self.report.add(entry)

    def _resumed(self, prepared: PreparedRecord) -> bool:
        state = self.writer.state
        if state is None:
            return False
        position = prepared.position
        if position in state.succeeded:
            self._check_key(position, state.succeeded[position][0], prepared.key)
            self.result.succeeded += 1
        elif position in state.failed and not self._resend_failed_uncertain(state.failed[position]):
            self._check_key(position, state.failed[position].get("key"), prepared.key)
            self.result.failed += 1
            self.report.add(state.failed[position])
        else:
            return False
        self.result.resumed += 1
        return True

    def _resend_failed_uncertain(self, entry: dict[str, Any]) -> bool:
        return entry.get("code") == UNCERTAIN_AFTER_CRASH and self.writer.resend_uncertain

    def _check_key(self, position: int, recorded: str | None, current: str | None) -> None:
        if recorded != current:
            raise CheckpointMismatchError(
                f"the input changed since the checkpoint was written: the record at position {position} was "
                f"{recorded!r} and is now {current!r}; a resumed write must read the same input in the same "
                "order (remove the checkpoint to start over)"
            )

    def _is_uncertain(self, prepared: PreparedRecord) -> bool:
        state = self.writer.state
        if state is None or prepared.repeatable or self.writer.batch:
            return False
        if prepared.position not in state.intended:
            return False
        if self.writer.resend_uncertain:
            log.warning("sending again record at position %d whose outcome is uncertain", prepared.position)
            return False
        return True

    def _uncertain_entry(self, prepared: PreparedRecord) -> dict[str, Any]:
        if self.writer.mode == "update":
            what = "its sublist lines may or may not have been added already"
            where = f"look at record {prepared.key} in NetSuite"
        else:
            what = "it may or may not have been created"
            where = (
                f"look for external ID {prepared.key} in NetSuite"
                if prepared.key
                else "look for it in NetSuite (it has no external ID)"
            )
        detail = (
            "an earlier attempt sent this record but stopped before NetSuite's answer was recorded, so "
            f"{what}; {where}, then remove it from the input or pass resend_uncertain=True to send it again"
        )
        return failure_entry(
            prepared.position, prepared.record, code=UNCERTAIN_AFTER_CRASH, detail=detail, key=prepared.key
        )

    def _record_uncertain(self, chunk: int, entries: list[dict[str, Any]]) -> None:
        self.result.failed += len(entries)
        for entry in entries:
            self.report.add(entry)
        if self.writer.checkpoint is not None:
            self.writer.checkpoint.write("outcome", chunk=chunk, succeeded=[], failed=entries, unsent=[])
        log.warning("%d records of chunk %d have an uncertain outcome after a crash", len(entries), chunk)

    def _record_outcome(self, chunk: int, outcome: ChunkOutcome, batch: bool = False) -> BaseException | None:
        self.result.succeeded += len(outcome.succeeded)
        self.result.failed += len(outcome.failed)
        for entry in outcome.failed:
            self.report.add(entry)
        if self.writer.checkpoint is not None:
            part = outcome.part(chunk, batch_done=batch and outcome.error is None)
            if part["succeeded"] or part["failed"] or part["unsent"] or part["batch_done"]:
                self.writer.checkpoint.write("outcome", **part)
        if outcome.error is not None:
            self._log_stop(outcome.error)
        return outcome.error

    def _log_stop(self, error: BaseException) -> None:
        log.warning(
            "stopping the write after %d records (%d succeeded, %d failed): %s; %s",
            self.result.succeeded + self.result.failed + self.result.skipped,
            self.result.succeeded,
            self.result.failed,
            type(error).__name__,
            "the checkpoint lets a task retry resume"
            if self.writer.checkpoint is not None
            else "no checkpoint is kept (no failure_path), so a retry starts over",
        )

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self.last_progress < self.writer.progress_interval:
            return
        self.last_progress = now
        done = self.result.succeeded + self.result.failed + self.result.skipped
        elapsed = max(now - self.started, 1e-9)
        log.info(
            "%d records done (%d succeeded, %d failed, %d skipped) in %.0f s, %.1f records/s",
            done,
            self.result.succeeded,
            self.result.failed,
            self.result.skipped,
            elapsed,
            done / elapsed,
        )

    def _finish(self) -> RecordWriteResult:
        result, writer = self.result, self.writer
        result.seconds = round(time.monotonic() - self.started, 3)
        stats = getattr(writer.client, "stats", None)
        result.requests = getattr(stats, "requests", 0) - self.stats_before[0]
        result.retries = getattr(stats, "retries", 0) - self.stats_before[1]
        result.check()
        if writer.failure_path is not None:
            self.report.publish(writer.failure_path, writer.publish)
        if writer.checkpoint is not None:
            writer.checkpoint.mark_done(result)
        log.info(
            "wrote %s records: %d input, %d succeeded, %d failed, %d skipped (%d resumed), %d requests, "
            "%d retries, %.1f s%s",
            writer.record_type,
            result.input,
            result.succeeded,
            result.failed,
            result.skipped,
            result.resumed,
            result.requests,
            result.retries,
            result.seconds,
            f"; failure report at {result.failure_path}" if result.failure_path else "",
        )
        return result


def _chunks(records: Iterable[Any], size: int) -> Iterator[tuple[int, list[tuple[int, Any]]]]:
    """Yield ``(chunk number, [(position, record), ...])``; chunk ``k`` holds positions ``k*size`` onward."""
    chunk: list[tuple[int, Any]] = []
    number = 0
    for position, record in enumerate(records):
        chunk.append((position, record))
        if len(chunk) == size:
            yield number, chunk
            chunk, number = [], number + 1
    if chunk:
        yield number, chunk


def _text(path: Any) -> str | None:
    return None if path is None else str(path)
