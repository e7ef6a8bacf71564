"""Token caches: single flight across threads and processes, invalidate-once, refresh margin, privacy."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_netsuite.core.errors import NetSuiteConfigError
from airflow_provider_netsuite.core.tokens import AccessToken, FileTokenCache, TokenCache, TokenCacheKey

KEY = TokenCacheKey("1234567_SB1", "client", "cert", ("rest_webservices",), "https://x.example")
SECRET = b"private key bytes stand-in"


class Minter:
    """Counts mints; each mint is slow enough for every waiting thread to pile up."""

    def __init__(self, lifetime: float = 3600, delay: float = 0.1) -> None:
        self.count = 0
        self.lifetime = lifetime
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> AccessToken:
        with self._lock:
            self.count += 1
            number = self.count
        time.sleep(self.delay)
        now = time.time()
        return AccessToken(f"token-{number}", now + self.lifetime, now)


def _in_threads(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = target()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_access_token_repr_hides_value():
    token = AccessToken("secret-access-token-value", time.time() + 10)
    assert "secret-access-token-value" not in repr(token) + str(token)


def test_single_flight_20_threads_one_mint():
    cache, mint = TokenCache(), Minter()
    tokens = _in_threads(20, lambda: cache.get(KEY, mint, 300))
    assert mint.count == 1
    assert {t.value for t in tokens} == {"token-1"}


def test_reuse_until_margin_then_refresh():
    cache = TokenCache()
    now = time.time()
    mints = iter([AccessToken("old", now + 1000, now - 2600), AccessToken("new", now + 3600, now)])
    assert cache.get(KEY, lambda: next(mints), 300).value == "old"
    assert cache.get(KEY, lambda: next(mints), 300).value == "old"
    assert cache.get(KEY, lambda: next(mints), 1200).value == "new"  # within 1200 s of expiry


def test_margin_capped_for_short_tokens():
    cache, mint = TokenCache(), Minter(lifetime=200, delay=0)
    cache.get(KEY, mint, 300)
    cache.get(KEY, mint, 300)
    assert mint.count == 1  # a 200 s token is still used despite a 300 s margin


def test_invalidate_only_same_token():
    cache, mint = TokenCache(), Minter(delay=0)
    first = cache.get(KEY, mint)
    assert cache.invalidate(KEY, first)
    second = cache.get(KEY, mint)
    assert not cache.invalidate(KEY, first)  # a late 401 for the old token keeps the new one
    assert cache.get(KEY, mint) is second
    assert mint.count == 2


def test_ten_threads_seeing_401_cause_one_remint():
    cache, mint = TokenCache(), Minter(delay=0.05)
    stale = cache.get(KEY, mint)

    def after_401() -> AccessToken:
        cache.invalidate(KEY, stale)
        return cache.get(KEY, mint)

    tokens = _in_threads(10, after_401)
    assert mint.count == 2
    assert {t.value for t in tokens} == {"token-2"}


def test_keys_are_separate():
    cache, mint = TokenCache(), Minter(delay=0)
    other = KEY._replace(certificate_id="cert-2")
    assert cache.get(KEY, mint).value != cache.get(other, mint).value


def test_mint_failure_propagates_and_next_call_retries():
    cache = TokenCache(failure_memory=0.05)

    def failing() -> AccessToken:
        raise RuntimeError("token endpoint down")

    with pytest.raises(RuntimeError):
        cache.get(KEY, failing)
    time.sleep(0.1)  # the failure is remembered only briefly
    assert cache.get(KEY, Minter(delay=0)).value == "token-1"


# --- FileTokenCache -----------------------------------------------------------------------------------


def _file_worker(directory: str, counter: str, queue) -> None:
    def mint() -> AccessToken:
        with open(counter, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write("x")
        time.sleep(0.3)
        now = time.time()
        return AccessToken(f"minted-by-{os.getpid()}", now + 3600, now)

    token = FileTokenCache(directory, SECRET).get(KEY, mint, 300)
    queue.put(token.value)


def test_file_cache_20_processes_one_mint(tmp_path):
    directory, counter = tmp_path / "cache", tmp_path / "mints"
    counter.touch()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(target=_file_worker, args=(str(directory), str(counter), queue)) for _ in range(20)
    ]
    for process in processes:
        process.start()
    values = [queue.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert counter.read_text() == "x"
    assert len(set(values)) == 1


def test_file_cache_modes_and_encryption(tmp_path):
    directory = tmp_path / "new" / "cache"
    cache = FileTokenCache(directory, SECRET)
    token = cache.get(KEY, Minter(delay=0))
    assert (directory.stat().st_mode & 0o777) == 0o700
    files = [p for p in directory.iterdir() if p.suffix == ".token"]
    assert len(files) == 1
    assert (files[0].stat().st_mode & 0o777) == 0o600
    assert token.value.encode() not in files[0].read_bytes()
    # another process with the same key reads it; a holder of another private key cannot
    assert FileTokenCache(directory, SECRET).get(KEY, Minter(delay=0)).value == token.value
    foreign = AccessToken("minted-by-another-key-holder", time.time() + 3600)
    assert FileTokenCache(directory, b"another key").get(KEY, lambda: foreign).value == foreign.value


def test_file_cache_corrupt_entry_is_a_miss(tmp_path):
    cache = FileTokenCache(tmp_path / "c", SECRET)
    cache.get(KEY, Minter(delay=0))
    path = next(p for p in (tmp_path / "c").iterdir() if p.suffix == ".token")
    path.write_bytes(b"garbage")
    mint = Minter(delay=0)
    assert cache.get(KEY, mint).value == "token-1"
    assert mint.count == 1


def test_file_cache_invalidate_same_token_only(tmp_path):
    cache = FileTokenCache(tmp_path / "c", SECRET)
    first = cache.get(KEY, Minter(delay=0))
    assert not cache.invalidate(KEY, AccessToken("something else", time.time() + 10))
    assert cache.invalidate(KEY, first)
    assert not cache.invalidate(KEY, first)


def test_file_cache_refuses_open_directory(tmp_path):
    directory = tmp_path / "open"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)  # noqa: S103 - the permissive mode is what is tested
    with pytest.raises(NetSuiteConfigError, match="chmod 700") as info:
        FileTokenCache(directory, SECRET)
    assert info.value.field == "token_cache_dir"


def test_file_cache_refuses_readable_file(tmp_path):
    cache = FileTokenCache(tmp_path / "c", SECRET)
    cache.get(KEY, Minter(delay=0))
    path = next(p for p in (tmp_path / "c").iterdir() if p.suffix == ".token")
    os.chmod(path, 0o644)
    with pytest.raises(NetSuiteConfigError, match="group or others"):
        cache.get(KEY, Minter(delay=0))


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's owner needs root")
def test_file_cache_refuses_directory_of_another_user(tmp_path):
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o700)
    os.chown(directory, 65534, 65534)
    with pytest.raises(NetSuiteConfigError, match="another user"):
        FileTokenCache(directory, SECRET)


def test_file_cache_refuses_a_file_path(tmp_path):
    path = Path(tmp_path / "file")
    path.write_text("x")
    with pytest.raises(NetSuiteConfigError):
        FileTokenCache(path, SECRET)
