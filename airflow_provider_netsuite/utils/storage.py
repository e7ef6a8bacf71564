"""Write a file beside its target and publish it only when complete (local paths, S3, GCS, ...)."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)
_LOCAL_PROTOCOLS = ("", "file", "local")


def as_storage_path(path: str | os.PathLike | ObjectStoragePath) -> ObjectStoragePath:
    """Return ``path`` as an ``ObjectStoragePath`` (plain paths, ``file://`` and ``s3://conn@bucket/key``)."""
    from airflow.sdk import ObjectStoragePath

    return path if isinstance(path, ObjectStoragePath) else ObjectStoragePath(os.fspath(path))


def _remove_quietly(path: ObjectStoragePath) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:  # the original error matters more than a failed clean-up
        log.warning("Could not remove the incomplete file %s", path, exc_info=True)


def _move(source: ObjectStoragePath, target: ObjectStoragePath) -> None:
    if source.protocol in _LOCAL_PROTOCOLS and target.protocol in _LOCAL_PROTOCOLS:
        os.replace(source.path, target.path)  # atomic on one file system
    else:
        source.rename(target)  # object stores: copy then delete; the target appears whole or not at all


@contextlib.contextmanager
def publish_atomically(target: str | os.PathLike | ObjectStoragePath) -> Iterator[ObjectStoragePath]:
    """Yield a temporary sibling path to write; move it onto ``target`` only if the block succeeds.

    The temporary file is ``<name>.inprogress-<uuid>`` in the target's directory (so a local move is an
    atomic rename). On any error the temporary file is deleted and an existing ``target`` is left as it was.

    :param target: the final path: a plain path, ``file://...``, ``s3://conn_id@bucket/key``, ...
    """
    final = as_storage_path(target)
    if not final.name:
        raise ValueError(f"output path {target!s} names a directory, not a file")
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.parent / f"{final.name}.inprogress-{uuid.uuid4().hex}"
    try:
        yield temporary
        _move(temporary, final)
    except BaseException:
        _remove_quietly(temporary)
        raise
