"""Access tokens and their caches: one per process (threads share it) and an optional one per host.

A NetSuite access token lives 3600 s. Every hook and client in a process shares :data:`PROCESS_TOKEN_CACHE`,
so a token is minted once per connection and refreshed a margin before it expires. When many threads need a
token at the same moment, exactly one of them mints it (single flight); the others wait and reuse it, or,
when minting failed, receive the same error instead of asking the token endpoint again.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airflow_provider_netsuite.core.errors import NetSuiteConfigError

DEFAULT_REFRESH_MARGIN = 300.0
FAILED_MINT_MEMORY = 5.0


@dataclass(frozen=True)
class AccessToken:
    """An OAuth 2.0 access token and when it expires (epoch seconds); ``repr`` hides the value."""

    value: str = field(repr=False)
    expires_at: float
    issued_at: float = field(default_factory=time.time)

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at:.0f}, value=***)"

    __str__ = __repr__

    def is_fresh(self, margin_s: float, now: float | None = None) -> bool:
        """Return whether the token is still usable ``margin_s`` seconds from now.

        The margin is capped at half the token's lifetime, so a short-lived token is still used.
        """
        now = time.time() if now is None else now
        margin = min(margin_s, max(0.0, (self.expires_at - self.issued_at) / 2))
        return now < self.expires_at - margin


class TokenCacheKey(NamedTuple):
    """What identifies one cached token: the same key pair on another account or host is another token.

    ``key_fingerprint`` (SHA-256 of the public key) keeps a connection whose private key was changed, or
    is wrong, from reusing a token minted with another key: a connection test must prove its own key.
    """

    account_id: str
    client_id: str
    certificate_id: str
    scopes: tuple[str, ...]
    base_url: str
    key_fingerprint: str = ""

    def digest(self) -> str:
        """Return a SHA-256 hex digest of the key, usable as a file name."""
        return hashlib.sha256(json.dumps(list(self), separators=(",", ":")).encode()).hexdigest()


class TokenCache:
    """Cache access tokens in memory, minting each one once even when many threads ask together.

    :param failure_memory: seconds a failed mint is remembered per key: the threads that were waiting for
        it, and any caller in that time, get the same error instead of each asking the token endpoint again.
    """

    def __init__(self, failure_memory: float = FAILED_MINT_MEMORY) -> None:
        self.failure_memory = failure_memory
        self._tokens: dict[Hashable, AccessToken] = {}
        self._failures: dict[Hashable, tuple[float, Exception]] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def peek(self, key: Hashable) -> AccessToken | None:
        """Return the cached token for ``key`` without minting, fresh or not."""
        with self._guard:
            return self._tokens.get(key)

    def get(
        self, key: Hashable, mint: Callable[[], AccessToken], margin_s: float = DEFAULT_REFRESH_MARGIN
    ) -> AccessToken:
        """Return the cached token for ``key``, or mint one if it is missing or within ``margin_s`` of expiry.

        :param mint: called at most once at a time per key; its exceptions propagate to the caller, and to
            every caller for ``failure_memory`` seconds after.
        """
        token = self.peek(key)
        if token is not None and token.is_fresh(margin_s):
            return token
        with self._lock_for(key):
            token = self.peek(key)  # another thread may have minted while this one waited
            if token is not None and token.is_fresh(margin_s):
                return token
            failure = self._recent_failure(key)
            if failure is not None:
                raise failure  # a mint failed moments ago, likely the one this thread waited for
            return self._mint(key, mint)

    def _mint(self, key: Hashable, mint: Callable[[], AccessToken]) -> AccessToken:
        try:
            token = mint()
        except Exception as error:
            with self._guard:
                self._failures[key] = (time.monotonic(), error)
            raise
        with self._guard:
            self._tokens[key] = token
            self._failures.pop(key, None)
        return token

    def _recent_failure(self, key: Hashable) -> Exception | None:
        with self._guard:
            failure = self._failures.get(key)
            if failure is None:
                return None
            failed_at, error = failure
            if time.monotonic() - failed_at > self.failure_memory:
                del self._failures[key]
                return None
            return error

    def invalidate(self, key: Hashable, token: AccessToken | None = None) -> bool:
        """Drop the cached token for ``key`` if it is still ``token``; return whether it was dropped.

        Threads that all saw a 401 with the same token thus cause one re-mint, not one each.
        """
        with self._guard:
            current = self._tokens.get(key)
            if current is None or (token is not None and current.value != token.value):
                return False
            del self._tokens[key]
            return True

    def clear(self) -> None:
        """Forget every cached token and every remembered failure."""
        with self._guard:
            self._tokens.clear()
            self._failures.clear()


PROCESS_TOKEN_CACHE = TokenCache()


def process_token_cache() -> TokenCache:
    """Return the process-wide token cache shared by every client in this process."""
    return PROCESS_TOKEN_CACHE


def _check_private(st: os.stat_result, what: str) -> None:
    if st.st_uid != os.geteuid():
        raise NetSuiteConfigError(
            f"{what} is owned by another user (uid {st.st_uid}); use a directory of your own.",
            field="token_cache_dir",
        )
    if st.st_mode & 0o077:
        raise NetSuiteConfigError(
            f"{what} is accessible to group or others (mode {stat.S_IMODE(st.st_mode):o});"
            " run chmod 700 on the directory and 600 on its files.",
            field="token_cache_dir",
        )


class FileTokenCache:
    """Share access tokens between the processes of one host through an encrypted directory.

    Each entry is encrypted with Fernet under a key derived (HKDF-SHA256) from the connection's private key
    and the cache key, so only a holder of the private key can read it. The directory must be private
    (mode 0700, owned by the current user). A per-key lock file (``flock``) makes one process mint while the
    others wait and then read its token. A damaged or undecryptable entry counts as a miss.

    :param directory: the ``token_cache_dir`` extra; created with mode 0700 if missing.
    :param encryption_secret: secret input keying material, e.g. the private key's DER bytes.
    """

    def __init__(self, directory: str | os.PathLike[str], encryption_secret: bytes) -> None:
        if not encryption_secret:
            raise ValueError("encryption_secret must not be empty")
        self.directory = Path(directory).expanduser()
        self._secret = encryption_secret
        self._prepare_directory()

    def __repr__(self) -> str:
        return f"FileTokenCache(directory={str(self.directory)!r})"

    def _prepare_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.directory, follow_symlinks=False)
        except OSError as exc:
            raise NetSuiteConfigError(
                f"cannot create {str(self.directory)!r} ({exc.strerror}).", field="token_cache_dir"
            ) from None
        if not stat.S_ISDIR(st.st_mode):
            raise NetSuiteConfigError(f"{str(self.directory)!r} is not a directory.", field="token_cache_dir")
        _check_private(st, f"the token cache directory {str(self.directory)!r}")

    def _fernet(self, key: TokenCacheKey) -> Fernet:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=key.digest().encode(),
            info=b"airflow-provider-netsuite token cache v1",
        )
        return Fernet(base64.urlsafe_b64encode(hkdf.derive(self._secret)))

    def _paths(self, key: TokenCacheKey) -> tuple[Path, Path]:
        digest = key.digest()
        return self.directory / f"{digest}.token", self.directory / f"{digest}.lock"

    @contextlib.contextmanager
    def _locked(self, lock_path: Path) -> Iterator[None]:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            _check_private(os.fstat(fd), f"the lock file {str(lock_path)!r}")
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _read(self, key: TokenCacheKey, path: Path) -> AccessToken | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return None
            raise
        with os.fdopen(fd, "rb") as handle:
            _check_private(os.fstat(handle.fileno()), f"the token cache file {str(path)!r}")
            blob = handle.read(65536)
        try:
            entry = json.loads(self._fernet(key).decrypt(blob))
            return AccessToken(str(entry["v"]), float(entry["e"]), float(entry["i"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None

    def _write(self, key: TokenCacheKey, path: Path, token: AccessToken) -> None:
        entry = json.dumps({"v": token.value, "e": token.expires_at, "i": token.issued_at}).encode()
        blob = self._fernet(key).encrypt(entry)
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".token")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def get(
        self, key: TokenCacheKey, mint: Callable[[], AccessToken], margin_s: float = DEFAULT_REFRESH_MARGIN
    ) -> AccessToken:
        """Return the shared token for ``key``, minting it under an exclusive file lock when needed."""
        path, lock_path = self._paths(key)
        token = self._read(key, path)
        if token is not None and token.is_fresh(margin_s):
            return token
        with self._locked(lock_path):
            token = self._read(key, path)  # the process that held the lock may have minted it
            if token is not None and token.is_fresh(margin_s):
                return token
            token = mint()
            self._write(key, path, token)
            return token

    def invalidate(self, key: TokenCacheKey, token: AccessToken | None = None) -> bool:
        """Delete the shared entry for ``key`` if it still holds ``token``; return whether it was deleted."""
        path, lock_path = self._paths(key)
        with self._locked(lock_path):
            current = self._read(key, path)
            if current is None or (token is not None and current.value != token.value):
                return False
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return True
