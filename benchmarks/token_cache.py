"""Measure the token cache against the emulator: tokens minted by many processes, time to mint, time to hit.

Run: ``.venv/bin/python benchmarks/token_cache.py [--processes 20] [--mints 20]``. It starts its own
emulator, registers a fresh RSA 3072 key made by openssl and prints:

* how many tokens the emulator issued while N separate Python processes (each its own interpreter, like
  Airflow task processes on one worker) built a client from the same extras with ``token_cache_dir`` and
  ran one SuiteQL query each, all released at the same moment;
* the mean and median time to mint a token (sign the assertion, POST it, parse the answer) over M mints;
* the time for a cached token: from the in-process cache and from the encrypted file cache.

:func:`run_processes` is also used by the integration tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# One task process: build the client, say "ready", wait for "go", run one query, report.
_TASK = r"""
def task(extra, ready, go, report):
    client = NetSuiteClient(ConnectionConfig.from_extra(extra))
    ready()
    go()
    started = time.perf_counter()
    page = client.suiteql_page("SELECT id FROM customer ORDER BY id", limit=1)
    elapsed = time.perf_counter() - started
    client.close()
    mints = client.stats.token_mints
    report({"count": page["count"], "mints": mints, "seconds": elapsed, "pid": os.getpid()})
"""

# Airflow is kept out of the children (the core does not need it), so they start quickly and really do
# ask for a token at the same moment.
_PRELUDE = r"""
import json, os, sys, time
sys.modules["airflow"] = None
from airflow_provider_netsuite.core.client import NetSuiteClient
from airflow_provider_netsuite.core.config import ConnectionConfig
"""

# "interpreters": each process is a new interpreter that talks to the parent through its stdin/stdout.
_INTERPRETER = (
    _PRELUDE
    + _TASK
    + r"""
task(
    json.loads(sys.stdin.readline()),
    lambda: print("ready", flush=True),
    sys.stdin.readline,
    lambda result: print(json.dumps(result), flush=True),
)
"""
)

# "fork": one launcher imports the core once and forks the task processes, as an Airflow worker forks
# its task runners. Each child is its own process with its own (empty) in-memory token cache.
_LAUNCHER = (
    _PRELUDE
    + _TASK
    + r"""
extra, count = json.loads(sys.stdin.readline()), int(sys.argv[1])
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
out_r, out_w = os.pipe()
pids = []
for _ in range(count):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            task(
                extra,
                lambda: os.write(ready_w, b"r"),
                lambda: os.read(go_r, 1),
                lambda result: os.write(out_w, (json.dumps(result) + "\n").encode()),
            )
        except BaseException as error:
            failure = {"error": f"{type(error).__name__}: {str(error)[:800]}"}
            os.write(out_w, (json.dumps(failure) + "\n").encode())
            code = 1
        os._exit(code)
    pids.append(pid)
os.close(out_w)
received = 0
while received < count:
    received += len(os.read(ready_r, count - received))
started = time.perf_counter()
os.write(go_w, b"g" * count)
for pid in pids:
    os.waitpid(pid, 0)
wall = time.perf_counter() - started
chunks = []
while chunk := os.read(out_r, 65536):
    chunks.append(chunk)
results = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
print(json.dumps({"results": results, "wall_seconds": wall}), flush=True)
"""
)


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_processes(
    extra: dict[str, Any], processes: int = 20, *, mode: str = "fork", timeout: float = 120.0
) -> dict[str, Any]:
    """Run one SuiteQL query in each of ``processes`` Python processes released at the same moment.

    :param extra: connection extras; give them a ``token_cache_dir`` to share tokens across processes.
    :param processes: how many task processes to run.
    :param mode: ``fork`` (one launcher forks the task processes, as Airflow workers do; quick) or
        ``interpreters`` (a new Python interpreter per process; slower to start).
    :param timeout: seconds allowed for all of them.
    :return: ``{"results": [{"count", "mints", "seconds", "pid"}, ...], "wall_seconds": float}``.
    :raises RuntimeError: when a process fails (its error message is included; it holds no secrets).
    """
    if mode == "fork":
        outcome = _run_forked(extra, processes, timeout)
    elif mode == "interpreters":
        outcome = _run_interpreters(extra, processes, timeout)
    else:
        raise ValueError("mode must be 'fork' or 'interpreters'")
    failures = [result["error"] for result in outcome["results"] if "error" in result]
    if failures or len(outcome["results"]) != processes:
        raise RuntimeError(f"{len(failures)} task processes failed: {failures[:3]}")
    return outcome


def _run_forked(extra: dict[str, Any], processes: int, timeout: float) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(processes)],
        input=json.dumps(extra) + "\n",
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=str(ROOT),
        timeout=timeout,
        check=False,
    )
    if run.returncode != 0:
        raise RuntimeError(f"the launcher failed ({run.returncode}): {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _run_interpreters(extra: dict[str, Any], processes: int, timeout: float) -> dict[str, Any]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _INTERPRETER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
            cwd=str(ROOT),
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            child.stdin.write(json.dumps(extra) + "\n")
            child.stdin.flush()
        for child in children:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a task process did not start: " + child.stderr.read()[-2000:])
        started = time.perf_counter()
        for child in children:  # the barrier: every process is waiting on this line
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, err = child.communicate(timeout=timeout)
            if child.returncode != 0:
                raise RuntimeError(f"a task process failed ({child.returncode}): {err[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return {"results": results, "wall_seconds": time.perf_counter() - started}
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _time_mints(extra: dict[str, Any], mints: int) -> list[float]:
    from airflow_provider_netsuite.core.client import NetSuiteClient
    from airflow_provider_netsuite.core.config import ConnectionConfig
    from airflow_provider_netsuite.core.tokens import TokenCache

    config = ConnectionConfig.from_extra({k: v for k, v in extra.items() if k != "token_cache_dir"})
    times = []
    with NetSuiteClient(config) as client:
        client.auth.token_cache = TokenCache()
        client.auth.token()  # warm up the HTTP connection
        for _ in range(mints):
            client.auth.token_cache = TokenCache()
            started = time.perf_counter()
            client.auth.token()
            times.append(time.perf_counter() - started)
    return times


def _time_hits(extra: dict[str, Any], repeats: int) -> tuple[float, float]:
    """Return the mean seconds of an in-process cache hit and of a file cache hit."""
    from airflow_provider_netsuite.core.client import NetSuiteClient
    from airflow_provider_netsuite.core.config import ConnectionConfig
    from airflow_provider_netsuite.core.tokens import TokenCache

    with NetSuiteClient(ConnectionConfig.from_extra(extra)) as client:
        client.auth.token_cache = TokenCache()
        client.auth.token()
        started = time.perf_counter()
        for _ in range(repeats):
            client.auth.token()
        memory = (time.perf_counter() - started) / repeats
        started = time.perf_counter()
        for _ in range(repeats):
            client.auth.token_cache = TokenCache()  # a new process: only the file cache knows the token
            client.auth.token()
        on_file = (time.perf_counter() - started) / repeats
        if client.stats.token_mints > 1:  # the file may already hold the token: then nothing is minted
            raise RuntimeError(f"every hit should come from a cache; saw {client.stats.token_mints} mints")
    return memory, on_file


def main(argv: list[str] | None = None) -> int:
    """Start an emulator, take the measurements, print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--mints", type=int, default=20)
    parser.add_argument("--mode", choices=("fork", "interpreters"), default="fork", help="see run_processes")
    args = parser.parse_args(argv)
    logging.getLogger("airflow_provider_netsuite").setLevel(logging.WARNING)  # one line per mint is noise

    sys.path.insert(0, str(ROOT))
    from tests.conftest import CLIENT_ID, make_keypair, start_emulator, stop_emulator

    with tempfile.TemporaryDirectory(prefix="netsuite-token-bench-") as work:
        work_dir = Path(work)
        emulator = start_emulator(work_dir / "emulator")
        try:
            emulator.configure(concurrency_limit=args.processes + 5)
            keypair = emulator.register(make_keypair(work_dir / "keys", "rsa:3072"))
            extra = {
                "account_id": emulator.account_id,
                "client_id": CLIENT_ID,
                "certificate_id": keypair.certificate_id,
                "private_key": keypair.private_key,
                "scopes": ["rest_webservices"],
                "base_url": emulator.base_url,
                "token_cache_dir": str(work_dir / "token-cache"),
            }
            before = emulator.stats()["tokens_issued"]
            outcome = run_processes(extra, args.processes, mode=args.mode)
            minted = emulator.stats()["tokens_issued"] - before
            mint_times = _time_mints(extra, args.mints)
            memory_hit, file_hit = _time_hits(extra, 200)
        finally:
            stop_emulator(emulator)

    query_times = [result["seconds"] for result in outcome["results"]]
    print(f"processes:                       {args.processes} ({args.mode})")
    print(f"tokens minted by them:           {minted}")
    print(f"wall time, all processes:        {outcome['wall_seconds'] * 1000:.0f} ms")
    print(f"first query per process:         median {statistics.median(query_times) * 1000:.0f} ms")
    print(f"token mints timed (RSA 3072):    {len(mint_times)}")
    print(f"time to mint a token:            mean {statistics.mean(mint_times) * 1000:.1f} ms, "
          f"median {statistics.median(mint_times) * 1000:.1f} ms")  # fmt: skip
    print(f"cached token, in-process:        {memory_hit * 1e6:.1f} us")
    print(f"cached token, from the file:     {file_hit * 1e6:.1f} us")
    return 0 if minted == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
