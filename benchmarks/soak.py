"""Soak test: several extracts and upserts at once against a governed, faulty emulator, for a bounded time.

The emulator has a concurrency limit of 5 and answers 10 % of requests with a transient fault (429, 500,
502, 503, a connection reset, a truncated body or an HTML page; fixed seed). Three extract workers (each
its own client capped at 2 requests in flight) and two upsert workers (capped at 2 too) run rounds until
the time is up: a demand of 10 against a limit of 5. Each extract round checks every row arrived exactly
once; each upsert round checks ``input == succeeded + failed + skipped`` and that NetSuite holds what
succeeded. Prints a table and writes JSON to ``benchmarks/results/soak-<time>.json``.

Usage: ``python benchmarks/soak.py [--seconds 150]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_netsuite.core.client import NetSuiteClient  # noqa: E402
from airflow_provider_netsuite.core.config import ConnectionConfig  # noqa: E402
from airflow_provider_netsuite.core.records import RecordWriter  # noqa: E402
from airflow_provider_netsuite.core.suiteql import SuiteQLExtract  # noqa: E402
from tests.conftest import CLIENT_ID, SCOPES, make_keypair, start_emulator, stop_emulator  # noqa: E402

RESULTS_DIR = ROOT / "benchmarks" / "results"
CONCURRENCY_LIMIT = 5
FAULTS = {
    "seed": 11,
    "rate": 0.1,
    "kinds": {"429": 1, "500": 1, "502": 1, "503": 1, "reset": 1, "truncate": 1, "html": 1},
    "html_status": 200,
}
TABLE = "soak_rows"
TABLE_ROWS = 30_000
EXTRACTS, EXTRACT_CONCURRENCY, EXTRACT_ROWS = 3, 2, 10_000
UPSERTS, UPSERT_CONCURRENCY, UPSERT_RECORDS = 2, 2, 200
PERMANENT_EVERY = 50  # every 50th record of a round is locked by a workflow (a permanent failure)


@dataclass
class WorkerTotals:
    """What one worker did over all its rounds."""

    name: str
    max_concurrency: int
    rounds: int = 0
    rows: int = 0
    rows_verified: int = 0
    records: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    identity_holds: bool = True
    stored_verified: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    peak_in_flight: int = 0
    errors: list[str] = field(default_factory=list)


def extract_worker(config: ConnectionConfig, index: int, deadline: float, totals: WorkerTotals) -> None:
    """Extract one slice of the table again and again; check each row arrives exactly once."""
    low, high = index * EXTRACT_ROWS, (index + 1) * EXTRACT_ROWS
    query = f"SELECT id, companyname FROM {TABLE} WHERE id > {low} AND id <= {high}"  # noqa: S608
    with NetSuiteClient(config, max_concurrency=EXTRACT_CONCURRENCY) as client:
        while time.monotonic() < deadline:
            try:
                extract = SuiteQLExtract(client, query, max_concurrency=EXTRACT_CONCURRENCY)
                ids = [int(row["id"]) for page in extract.pages() for row in page]
            except Exception as error:  # a soak reports failures instead of stopping
                totals.errors.append(f"{type(error).__name__}: {str(error)[:200]}")
                continue
            totals.rounds += 1
            totals.rows += len(ids)
            if len(ids) == len(set(ids)) and set(ids) == set(range(low + 1, high + 1)):
                totals.rows_verified += len(ids)
            else:
                totals.errors.append(f"round {totals.rounds}: {len(ids)} rows, {len(set(ids))} distinct")
        _client_totals(client, totals)


def upsert_worker(
    config: ConnectionConfig, emulator: Any, index: int, deadline: float, totals: WorkerTotals
) -> None:
    """Upsert fresh batches of customers again and again; check the accounting and what NetSuite holds."""
    with NetSuiteClient(config, max_concurrency=UPSERT_CONCURRENCY) as client:
        while time.monotonic() < deadline:
            prefix = f"SOAK{index}R{totals.rounds}"
            records = [
                {"externalId": f"{prefix}-{n}", "companyName": f"Soak {prefix} {n}"}
                for n in range(UPSERT_RECORDS)
            ]
            records.append({"externalId": "not valid!", "companyName": "refused locally"})
            try:
                result = RecordWriter(client, "customer", max_concurrency=UPSERT_CONCURRENCY).write(records)
            except Exception as error:  # a soak reports failures instead of stopping
                totals.errors.append(f"{type(error).__name__}: {str(error)[:200]}")
                totals.rounds += 1
                continue
            totals.rounds += 1
            totals.records += result.input
            totals.succeeded += result.succeeded
            totals.failed += result.failed
            totals.skipped += result.skipped
            holds = result.input == result.succeeded + result.failed + result.skipped == len(records)
            expected_failed = len([n for n in range(UPSERT_RECORDS) if n % PERMANENT_EVERY == 7])
            totals.identity_holds = totals.identity_holds and holds and result.failed == expected_failed
            rows = emulator.query_db(
                f"SELECT COUNT(*) AS n FROM customer WHERE externalid LIKE '{prefix}-%'"  # noqa: S608
            )
            if rows[0]["n"] == result.succeeded:
                totals.stored_verified += result.succeeded
            else:
                totals.errors.append(f"{prefix}: {rows[0]['n']} stored, {result.succeeded} succeeded")
        _client_totals(client, totals)


def _client_totals(client: NetSuiteClient, totals: WorkerTotals) -> None:
    stats = client.stats
    totals.requests, totals.retries, totals.throttled = stats.requests, stats.retries, stats.throttled
    totals.peak_in_flight = client.governor.peak_in_flight


def permanent_failures(rounds: int) -> dict[str, Any]:
    """Lock every PERMANENT_EVERY-th record of the first ``rounds`` rounds of each upsert worker."""
    keys = [
        f"customer/eid:SOAK{worker}R{round_}-{n}"
        for worker in range(UPSERTS)
        for round_ in range(rounds)
        for n in range(UPSERT_RECORDS)
        if n % PERMANENT_EVERY == 7
    ]
    return {"permanent": keys}


def run(seconds: float) -> dict[str, Any]:
    """Run the soak for ``seconds`` and return its report."""
    work = Path(tempfile.mkdtemp(prefix="netsuite-soak-"))
    emulator = start_emulator(
        work / "emulator", "--concurrency-limit", str(CONCURRENCY_LIMIT), "--latency-ms", "5"
    )
    try:
        keypair = emulator.register(make_keypair(work / "keys", "rsa:3072"))
        config = ConnectionConfig.from_extra(
            {
                "account_id": emulator.account_id,
                "client_id": CLIENT_ID,
                "certificate_id": keypair.certificate_id,
                "private_key": keypair.private_key,
                "scopes": SCOPES,
                "base_url": emulator.base_url,
            }
        )
        emulator.admin("POST", "tables/generate", {"table": TABLE, "rows": TABLE_ROWS})
        emulator.configure(faults=FAULTS, record_failures=permanent_failures(rounds=400))
        emulator.admin("POST", "stats/reset")

        started = time.monotonic()
        deadline = started + seconds
        workers: list[tuple[threading.Thread, WorkerTotals]] = []
        for index in range(EXTRACTS):
            totals = WorkerTotals(f"extract-{index}", EXTRACT_CONCURRENCY)
            thread = threading.Thread(target=extract_worker, args=(config, index, deadline, totals))
            workers.append((thread, totals))
        for index in range(UPSERTS):
            totals = WorkerTotals(f"upsert-{index}", UPSERT_CONCURRENCY)
            thread = threading.Thread(target=upsert_worker, args=(config, emulator, index, deadline, totals))
            workers.append((thread, totals))
        for thread, _ in workers:
            thread.start()
        for thread, _ in workers:
            thread.join()
        elapsed = time.monotonic() - started
        server = emulator.stats()
    finally:
        stop_emulator(emulator)
    return _report([totals for _, totals in workers], server, elapsed)


def _report(workers: list[WorkerTotals], server: dict[str, Any], elapsed: float) -> dict[str, Any]:
    extracts = [w for w in workers if w.name.startswith("extract")]
    upserts = [w for w in workers if w.name.startswith("upsert")]
    return {
        "seconds": round(elapsed, 1),
        "concurrency_limit": CONCURRENCY_LIMIT,
        "faults": FAULTS,
        "client_caps_total": sum(w.max_concurrency for w in workers),
        "requests_sent": sum(w.requests for w in workers),
        "requests_answered_by_emulator": server["requests"],
        "throttled_429_received": sum(w.throttled for w in workers),
        "emulator_429": server["by_status"].get("429", 0),
        "emulator_peak_in_flight": server["peak_in_flight"],
        "client_peak_in_flight_sum": sum(w.peak_in_flight for w in workers),
        "retries": sum(w.retries for w in workers),
        "faults_injected": server["faults_injected"],
        "rows_extracted": sum(w.rows for w in extracts),
        "rows_verified_exactly_once": sum(w.rows_verified for w in extracts),
        "records_input": sum(w.records for w in upserts),
        "records_succeeded": sum(w.succeeded for w in upserts),
        "records_failed": sum(w.failed for w in upserts),
        "records_skipped": sum(w.skipped for w in upserts),
        "records_stored_verified": sum(w.stored_verified for w in upserts),
        "identity_holds": all(w.identity_holds for w in upserts),
        "errors": [f"{w.name}: {e}" for w in workers for e in w.errors],
        "workers": [asdict(w) for w in workers],
    }


def print_table(report: dict[str, Any]) -> None:
    """Print the headline figures as a two-column table."""
    rows = [
        ("duration (s)", report["seconds"]),
        ("emulator concurrency limit", report["concurrency_limit"]),
        ("sum of client caps (max_concurrency)", report["client_caps_total"]),
        ("peak in flight at the emulator", report["emulator_peak_in_flight"]),
        ("requests sent by clients", report["requests_sent"]),
        ("429s received by clients", report["throttled_429_received"]),
        ("retries", report["retries"]),
        ("faults injected", sum(report["faults_injected"].values())),
        ("rows extracted", report["rows_extracted"]),
        ("rows verified exactly once", report["rows_verified_exactly_once"]),
        ("records input", report["records_input"]),
        (
            "  succeeded / failed / skipped",
            "{} / {} / {}".format(
                report["records_succeeded"], report["records_failed"], report["records_skipped"]
            ),
        ),
        ("records verified stored", report["records_stored_verified"]),
        ("input == succeeded + failed + skipped", report["identity_holds"]),
        ("errors", len(report["errors"])),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for error in report["errors"][:10]:
        print("error:", error)


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print the table, write the JSON; exit 1 if a guarantee was broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="how long the workers run (default 150)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("airflow_provider_netsuite").setLevel(logging.ERROR)

    report = run(args.seconds)
    print_table(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    broken = (
        report["emulator_peak_in_flight"] > CONCURRENCY_LIMIT
        or report["rows_verified_exactly_once"] != report["rows_extracted"]
        or not report["identity_holds"]
        or report["records_stored_verified"] != report["records_succeeded"]
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
