"""Benchmark record upserts against the emulator: per-record mode and asynchronous batch mode.

The emulator plays an account with a concurrency limit of 5 and 200 ms of latency per request. For each
mode the benchmark upserts the same number of new customers and prints records per second and the ratio
to the ideal, ``records x latency / concurrency limit`` seconds: what a client that kept every slot of the
account busy with one record per request would take. The per-record goal is a ratio of at least 0.85.

Usage: ``python benchmarks/upsert.py [--records 5000] [--concurrency 4,5] [--no-batch]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_netsuite.core.client import NetSuiteClient  # noqa: E402
from airflow_provider_netsuite.core.config import ConnectionConfig  # noqa: E402
from airflow_provider_netsuite.core.records import RecordWriter  # noqa: E402
from tests.conftest import (  # noqa: E402
    CLIENT_ID,
    SCOPES,
    Emulator,
    make_keypair,
    start_emulator,
    stop_emulator,
)

CONCURRENCY_LIMIT = 5
LATENCY_MS = 200


def customers(prefix: str, count: int) -> list[dict]:
    """Return ``count`` new customers with external IDs ``<prefix>-<n>``."""
    return [
        {
            "externalId": f"{prefix}-{number:06d}",
            "companyName": f"Bench Company {number}",
            "email": f"bench.{number}@example.com",
        }
        for number in range(count)
    ]


def connection_extra(emulator: Emulator, work: Path) -> dict:
    """Register a fresh RSA key with the emulator and return connection extras that use it."""
    keypair = emulator.register(make_keypair(work / "keys", "rsa:3072"))
    return {
        "account_id": emulator.account_id,
        "client_id": CLIENT_ID,
        "certificate_id": keypair.certificate_id,
        "private_key": keypair.private_key,
        "scopes": SCOPES,
        "base_url": emulator.base_url,
    }


def run_mode(extra: dict, work: Path, label: str, records: list[dict], concurrency: int, batch: bool) -> dict:
    """Upsert ``records`` in one mode; return the figures of the run."""
    config = ConnectionConfig.from_extra(extra)
    with NetSuiteClient(config, max_concurrency=concurrency) as client:
        client.suiteql_page("SELECT id FROM customer", limit=1)  # mint the token outside the timing
        writer = RecordWriter(
            client,
            "customer",
            max_concurrency=concurrency,
            failure_path=work / label / "failures.jsonl",
            batch=batch,
            poll_interval=0.5,
            progress_interval=30.0,
        )
        started = time.monotonic()
        result = writer.write(records)
        seconds = time.monotonic() - started
        throttled = client.stats.throttled
    ideal = len(records) * LATENCY_MS / 1000 / CONCURRENCY_LIMIT
    return {
        "mode": label,
        "records": len(records),
        "succeeded": result.succeeded,
        "failed": result.failed,
        "requests": result.requests,
        "throttled": throttled,
        "seconds": round(seconds, 1),
        "records_per_second": round(len(records) / seconds, 1),
        "ideal_seconds": round(ideal, 1),
        "ratio_to_ideal": round(ideal / seconds, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--concurrency", default="4,5", help="max_concurrency values of per-record mode")
    parser.add_argument("--no-batch", action="store_true", help="skip the batch mode")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory(prefix="netsuite-bench-upsert-") as directory:
        work = Path(directory)
        emulator = start_emulator(work / "emulator")
        try:
            emulator.configure(concurrency_limit=CONCURRENCY_LIMIT, latency_ms=LATENCY_MS)
            extra = connection_extra(emulator, work)
            runs = [
                (f"per-record c={value}", int(value), False) for value in args.concurrency.split(",") if value
            ]
            if not args.no_batch:
                runs.append((f"batch c={CONCURRENCY_LIMIT}", CONCURRENCY_LIMIT, True))
            figures = []
            for number, (label, concurrency, batch) in enumerate(runs):
                records = customers(f"BENCH{number}", args.records)
                figures.append(run_mode(extra, work, label.replace(" ", "_"), records, concurrency, batch))
                print(_line(figures[-1]), flush=True)
        finally:
            stop_emulator(emulator)
    per_record = [item for item in figures if item["mode"] == f"per-record_c={CONCURRENCY_LIMIT}"]
    if per_record and per_record[0]["ratio_to_ideal"] < 0.85:
        print(f"per-record mode is below the goal of 0.85 of the ideal ({per_record[0]['ratio_to_ideal']})")
        return 1
    return 0


def _line(item: dict) -> str:
    return (
        f"{item['mode']:<18} {item['records']:>6} records  {item['seconds']:>7.1f} s  "
        f"{item['records_per_second']:>6.1f} records/s  ideal {item['ideal_seconds']:.1f} s  "
        f"ratio {item['ratio_to_ideal']:.3f}  ({item['succeeded']} succeeded, {item['failed']} failed, "
        f"{item['requests']} requests, {item['throttled']} throttled)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
