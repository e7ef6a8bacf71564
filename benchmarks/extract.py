"""Benchmark SuiteQL extracts on the emulator: this provider, a plain offset loop, the `netsuite` library.

Run with ``make bench`` (``.venv/bin/python benchmarks/extract.py``). The emulator runs as its own process
with 100 ms latency per request and a concurrency limit of 5. For each table size this script runs, each in
a fresh child process (so peak RSS is per run and comparable between sizes, and the emulator's CPU is not
counted):

* ``provider``: ``SuiteQLExtract`` + ``JsonlWriter`` to a local file at ``max_concurrency`` 4 inside
  ``frozen_heap()``, the core of ``NetSuiteSuiteQLOperator``;
* ``plain_loop``: ``requests`` with a Bearer token, ``limit=1000``, ``offset += 1000`` until ``hasMore`` is
  false, writing JSONL; offsets stop at NetSuite's 100,000-result cap, so it reaches only 100,000 rows
  (``--peer-paging keyset`` makes it page ``WHERE id > last`` instead and reach every row, slowly);
* ``netsuite_lib``: PyPI ``netsuite`` with TBA, its ``rest_api.suiteql`` awaited in the same offset loop.

The figures, next to their goals, are printed as a table and written to
``benchmarks/results/extract-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

SCRIPT = Path(__file__).resolve()
PAGE_SIZE = 1000
RESULT_CAP = 100_000
GOAL_RATIO = 0.85
GOAL_CPU_PER_100K = 1.0
GOAL_MEMORY_GROWTH_MB = 100.0
_ID = re.compile(rb'"id": ?"([0-9]+)"')


# --------------------------------------------------------------------------------------------------------
# Child runners: each runs in a fresh interpreter and prints one JSON object.


def run_provider(payload: dict[str, Any]) -> dict[str, Any]:
    """Extract the table with SuiteQLExtract + JsonlWriter, as the operator does, and measure it."""
    from airflow_provider_netsuite.core.client import NetSuiteClient
    from airflow_provider_netsuite.core.config import ConnectionConfig
    from airflow_provider_netsuite.core.heap import frozen_heap
    from airflow_provider_netsuite.core.suiteql import SuiteQLExtract
    from airflow_provider_netsuite.core.writers import JsonlWriter

    config = ConnectionConfig.from_extra(payload["extra"])
    concurrency = payload["max_concurrency"]
    wall, cpu = time.perf_counter(), time.process_time()
    with NetSuiteClient(config, max_concurrency=concurrency) as client, open(payload["output"], "wb") as f:
        durations = _time_requests(client.session)
        extract = SuiteQLExtract(client, payload["query"], max_concurrency=concurrency)
        writer = JsonlWriter(f)
        with frozen_heap():
            for page in extract.pages():
                writer.write_page(page)
        writer.close()
        stats = client.stats
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        **_request_figures(durations, wall, concurrency),
        "rows": extract.stats.rows,
        "pages": extract.stats.pages,
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "strategy": extract.stats.strategy,
        "bytes": writer.bytes_written,
    }


def _time_requests(session: Any) -> list[float]:
    """Record the duration of every HTTP request the session sends (time to the whole body)."""
    durations: list[float] = []
    send = session.request

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return send(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - started)

    session.request = timed
    return durations


def _request_figures(durations: list[float], wall: float, concurrency: int) -> dict[str, Any]:
    """Return the median request time and how busy the request slots were, to tell server from client."""
    if not durations:
        return {}
    ordered = sorted(durations)
    return {
        "request_median_s": round(ordered[len(ordered) // 2], 4),
        "request_p90_s": round(ordered[int(len(ordered) * 0.9)], 4),
        "slot_utilisation": round(sum(durations) / (concurrency * wall), 3),
    }


def _next_page_query(table: str, paging: str, last_id: str | None) -> tuple[str, int]:
    """Return the query and offset of the next page for the peers' loops."""
    if paging == "keyset":
        where = f" WHERE id > {int(last_id)}" if last_id is not None else ""
        return f"SELECT * FROM {table}{where} ORDER BY id", 0  # noqa: S608
    return f"SELECT * FROM {table} ORDER BY id", -1  # noqa: S608


def _peer_loop(fetch, payload: dict[str, Any], out) -> dict[str, Any]:
    """Page sequentially with ``fetch(query, offset)`` and write JSONL; stop at the end or the 100k cap."""
    table, paging = payload["table"], payload["paging"]
    rows = pages = offset = 0
    last_id = None
    stopped_by_cap = False
    durations: list[float] = []
    while True:
        query, fixed_offset = _next_page_query(table, paging, last_id)
        started = time.perf_counter()
        page = fetch(query, offset if fixed_offset < 0 else fixed_offset)
        durations.append(time.perf_counter() - started)
        items = page.get("items", [])
        out.write("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode())
        rows, pages = rows + len(items), pages + 1
        if not items or not page.get("hasMore"):
            break
        last_id, offset = items[-1]["id"], offset + PAGE_SIZE
        if paging == "offset" and offset >= RESULT_CAP:
            stopped_by_cap = True
            break
    return {
        "rows": rows,
        "pages": pages,
        "requests": pages,
        "stopped_by_cap": stopped_by_cap,
        "durations": durations,
    }


def run_plain_loop(payload: dict[str, Any]) -> dict[str, Any]:
    """Page with requests and a Bearer token, one request after another."""
    import requests

    from airflow_provider_netsuite.core.auth import ClientCredentialsAuth
    from airflow_provider_netsuite.core.config import ConnectionConfig

    session = requests.Session()
    config = ConnectionConfig.from_extra(payload["extra"])
    token = ClientCredentialsAuth(config, session).token().value
    headers = {"Authorization": f"Bearer {token}", "Prefer": "transient"}
    url = payload["base_url"] + common.SUITEQL_PATH

    def fetch(query: str, offset: int) -> dict[str, Any]:
        params = {"limit": PAGE_SIZE, "offset": offset}
        response = session.post(url, params=params, json={"q": query}, headers=headers, timeout=60)
        response.raise_for_status()
        return response.json()

    wall, cpu = time.perf_counter(), time.process_time()
    with open(payload["output"], "wb") as out:
        result = _peer_loop(fetch, payload, out)
    return _peer_result(result, time.perf_counter() - wall, time.process_time() - cpu)


def _peer_result(result: dict[str, Any], wall: float, cpu: float) -> dict[str, Any]:
    durations = result.pop("durations")
    return {**result, "wall_s": wall, "cpu_s": cpu, **_request_figures(durations, wall, 1)}


def run_netsuite_lib(payload: dict[str, Any]) -> dict[str, Any]:
    """Page with the PyPI ``netsuite`` library (TBA), awaiting its SuiteQL call in a loop."""
    from netsuite import Config, NetSuite, TokenAuth

    tba = payload["tba"]
    config = Config(account=payload["account_id"], auth=TokenAuth(**tba))
    rest_api = NetSuite(config).rest_api
    # The library builds https://<account>.suitetalk.api.netsuite.com/services/rest<path>; its request
    # methods take an explicit `url` keyword (it uses that itself for token_info), which points it at the
    # emulator's loopback http URL without patching anything.
    url = payload["base_url"] + common.SUITEQL_PATH
    loop = asyncio.new_event_loop()

    def fetch(query: str, offset: int) -> dict[str, Any]:
        return loop.run_until_complete(rest_api.suiteql(q=query, limit=PAGE_SIZE, offset=offset, url=url))

    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with open(payload["output"], "wb") as out:
            result = _peer_loop(fetch, payload, out)
    finally:
        loop.close()
    return _peer_result(result, time.perf_counter() - wall, time.process_time() - cpu)


RUNNERS = {"provider": run_provider, "plain_loop": run_plain_loop, "netsuite_lib": run_netsuite_lib}


def child_main(payload: dict[str, Any]) -> None:
    """Run one measured extract in this (fresh) process and print its result as JSON."""
    result = RUNNERS[payload["runner"]](payload)
    result["runner"] = payload["runner"]
    common.emit_child_result(result)


# --------------------------------------------------------------------------------------------------------
# The parent: emulator, tables, runs, checks, report.


def check_output(path: Path, expected_rows: int) -> dict[str, Any]:
    """Check the JSONL output holds ids 1..n, each once and ascending; return the finding."""
    count, previous, ordered = 0, 0, True
    with open(path, "rb") as stream:
        for line in stream:
            match = _ID.search(line)
            value = int(match.group(1)) if match else -1
            ordered = ordered and value == previous + 1
            previous, count = value, count + 1
    exact = ordered and count == expected_rows
    return {"lines": count, "ids_exactly_once_in_order": ordered, "complete": exact}


def measure(
    emulator: common.Emulator, payload: dict[str, Any], expected_rows: int, timeout: float
) -> dict[str, Any]:
    """Run one measured child, add the emulator's CPU and request counts, check the output file."""
    emulator.reset_stats()
    emulator_cpu = emulator.cpu_seconds()
    load_before = os.getloadavg()[0]
    try:
        result = common.run_child(SCRIPT, payload, timeout)
    except (RuntimeError, TimeoutError) as error:
        return {"runner": payload["runner"], "error": str(error)}
    result["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    if emulator_cpu is not None:
        result["emulator_cpu_s"] = round(emulator.cpu_seconds() - emulator_cpu, 2)
    stats = emulator.stats()
    result["emulator_requests"] = stats["requests"]
    result["emulator_throttled"] = stats["throttled"]
    result["emulator_peak_in_flight"] = stats["peak_in_flight"]
    result.update(check_output(Path(payload["output"]), expected_rows))
    Path(payload["output"]).unlink(missing_ok=True)
    return result


def derive(result: dict[str, Any], rows_in_table: int, latency_s: float, concurrency: int) -> None:
    """Add rows/s, ideal time, ratio and CPU per 100,000 rows to a run's result."""
    if "error" in result:
        return
    rows, wall = result["rows"], result["wall_s"]
    result["rows_per_s"] = round(rows / wall) if wall else None
    result["cpu_s_per_100k_rows"] = round(result["cpu_s"] / rows * 100_000, 3) if rows else None
    result["cpu_us_per_row"] = round(result["cpu_s"] / rows * 1e6, 2) if rows else None
    pages = math.ceil(rows / PAGE_SIZE)
    result["ideal_s"] = round(pages * latency_s / concurrency, 3)
    result["ratio_to_ideal"] = round(result["ideal_s"] / wall, 3) if wall else None
    if rows < rows_in_table and result.get("rows_per_s"):
        result["projected_s_for_all_rows"] = round(rows_in_table / result["rows_per_s"], 1)


def run_size(
    emulator: common.Emulator, args: argparse.Namespace, table: str, rows: int, context: dict[str, Any]
) -> dict[str, Any]:
    """Run the provider (and, unless it is the memory baseline, the peers) on one table."""
    latency_s = args.latency_ms / 1000
    ideal = math.ceil(rows / PAGE_SIZE) * latency_s / args.max_concurrency
    base = {"table": table, "base_url": emulator.base_url, "account_id": emulator.account_id, **context}
    base["query"] = f"SELECT * FROM {table}"  # noqa: S608
    base["output"] = str(args.work_dir / f"{table}.jsonl")
    entry: dict[str, Any] = {"rows_in_table": rows, "pages": math.ceil(rows / PAGE_SIZE)}

    print(f"[{table}] provider, max_concurrency {args.max_concurrency} ...", flush=True)
    provider = measure(emulator, {**base, "runner": "provider"}, rows, timeout=60 + 4 * ideal)
    derive(provider, rows, latency_s, args.max_concurrency)
    entry["provider"] = provider
    _print_run(provider)
    if not args.peers or rows < args.peer_min_rows:
        return entry

    reachable = rows if args.peer_paging == "keyset" else min(rows, RESULT_CAP)
    peer_timeout = 60 + 3 * math.ceil(reachable / PAGE_SIZE) * latency_s
    for runner in ("plain_loop", "netsuite_lib"):
        print(f"[{table}] {runner}, sequential {args.peer_paging} paging ...", flush=True)
        payload = {**base, "runner": runner, "paging": args.peer_paging}
        result = measure(emulator, payload, reachable, timeout=peer_timeout)
        derive(result, rows, latency_s, 1)
        entry[runner] = result
        _print_run(result)
    return entry


def _print_run(result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"    ERROR: {result['error']}", flush=True)
        return
    print(
        "    {rows} rows in {wall_s:.2f} s ({rows_per_s} rows/s), ideal {ideal_s:.2f} s, ratio "
        "{ratio_to_ideal}, CPU {cpu_s:.2f} s ({cpu_us_per_row} us/row), peak RSS {peak_rss_mb} MB, "
        "emulator CPU {emulator_cpu_s} s, 429s {emulator_throttled}, median request {request_median_s} s, "
        "slots busy {slot_utilisation}, load {load_average_1m}, output complete: {complete}".format(
            **{"emulator_cpu_s": None, "request_median_s": None, "slot_utilisation": None, **result}
        ),
        flush=True,
    )


# --------------------------------------------------------------------------------------------------------
# Report.


def _goal(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "MISSED")


def summary_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """Return the final table's rows: size, runner, figures and the goal verdicts."""
    rows = []
    baseline = report["sizes"].get(str(report["baseline_rows"]), {}).get("provider", {})
    for size, entry in report["sizes"].items():
        for runner in ("provider", "plain_loop", "netsuite_lib"):
            result = entry.get(runner)
            if not result:
                continue
            if "error" in result:
                rows.append((size, runner, "ERROR", *[""] * 9, result["error"][:60]))
                continue
            is_provider = runner == "provider"
            growth = (
                result["peak_rss_mb"] - baseline["peak_rss_mb"]
                if is_provider and baseline.get("peak_rss_mb")
                else None
            )
            verdicts = []
            if is_provider and int(size) == report["baseline_rows"]:
                verdicts.append("memory baseline")
            elif is_provider:
                verdicts.append(f"ratio {_goal(result['ratio_to_ideal'] >= GOAL_RATIO)}")
                verdicts.append(f"cpu {_goal(result['cpu_s_per_100k_rows'] <= GOAL_CPU_PER_100K)}")
                if growth is not None and int(size) != report["baseline_rows"]:
                    verdicts.append(f"mem {_goal(growth <= GOAL_MEMORY_GROWTH_MB)}")
            else:
                note = "stopped at 100k cap" if result.get("stopped_by_cap") else "all rows"
                projected = result.get("projected_s_for_all_rows")
                verdicts.append(note + (f"; all rows ~{projected:.0f} s" if projected else ""))
            rows.append(
                (
                    size,
                    runner,
                    f"{result['rows']}",
                    f"{result['wall_s']:.2f}",
                    f"{result['rows_per_s']}",
                    f"{result['ideal_s']:.2f}",
                    f"{result['ratio_to_ideal']:.3f}",
                    f"{result['cpu_s_per_100k_rows']:.3f}",
                    f"{result['peak_rss_mb']:.1f}",
                    "" if growth is None else f"{growth:+.1f}",
                    f"{result.get('request_median_s', 0) * 1000:.0f}",
                    f"{result.get('slot_utilisation', 0):.2f}",
                    ", ".join(verdicts),
                )
            )
    return rows


def print_table(report: dict[str, Any]) -> None:
    """Print the final table with the goals."""
    header = (
        "rows",
        "runner",
        "extracted",
        "wall s",
        "rows/s",
        "ideal s",
        "ideal/act",
        "CPU s/100k",
        "RSS MB",
        "vs base MB",
        "req ms",
        "slots busy",
        "goals",
    )
    rows = [header, *summary_rows(report)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print()
    print(
        f"Goals (provider): ideal/actual >= {GOAL_RATIO}; CPU <= {GOAL_CPU_PER_100K} s per 100,000 rows "
        f"(JSONL); 1M-row peak RSS within {GOAL_MEMORY_GROWTH_MB:.0f} MB of the "
        f"{report['baseline_rows']}-row peak. Ideal = pages x latency / concurrency "
        f"({report['settings']['latency_ms']:.0f} ms, provider concurrency "
        f"{report['settings']['max_concurrency']}, peers 1). req ms = median request time seen by the "
        "client; slots busy = sum of request times / (concurrency x wall), i.e. the ratio to an ideal "
        "computed with the observed request times instead of the nominal latency."
    )
    for index, row in enumerate(rows):
        print("  ".join(cell.rjust(widths[i]) if i != 12 else cell for i, cell in enumerate(row)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for note in report["notes"]:
        print(f"* {note}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250000,1000000", help="comma-separated table sizes")
    parser.add_argument("--baseline-rows", type=int, default=10_000, help="memory baseline size")
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--concurrency-limit", type=int, default=5)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip the comparison")
    parser.add_argument("--peer-paging", choices=("offset", "keyset"), default="offset")
    parser.add_argument("--peer-min-rows", type=int, default=100_000, help="skip peers below this size")
    parser.add_argument("--state-dir", type=Path, help="emulator state (default: a temporary directory)")
    parser.add_argument("--output", type=Path, help="JSON results (default: benchmarks/results/...)")
    return parser.parse_args(argv)


def notes(args: argparse.Namespace) -> list[str]:
    """Return the method notes printed under the table and stored with the results."""
    peers = (
        "plain_loop and netsuite_lib page sequentially by offset (limit 1000, offset += 1000) as users "
        "write them: NetSuite refuses offsets >= 100,000, so they reach 100,000 rows only; rows/s and "
        "the projected time for all rows are from that run"
        if args.peer_paging == "offset"
        else "plain_loop and netsuite_lib page sequentially by key (WHERE id > last ORDER BY id)"
    )
    return [
        "each run is a fresh child process; CPU = time.process_time() of that child around the extract "
        "only; RSS = its ru_maxrss (imports included); the emulator is another process",
        peers,
        "netsuite_lib (PyPI netsuite, TBA HMAC-SHA256 via authlib) is pointed at the emulator with its own "
        "`url=` request keyword; no patching; it opens a new httpx client (connection) per request",
        "provider = SuiteQLExtract + JsonlWriter (untyped, as NetSuiteSuiteQLOperator with typed=False) "
        "over NetSuiteClient with OAuth 2.0 M2M (PS256); its request count includes the planner's first "
        "page and, past 100,000 rows, the key statistics query",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted({args.baseline_rows, *(int(size) for size in args.sizes.split(",") if size)})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="netsuite-bench-") as temporary:
        work = Path(temporary)
        args.work_dir = work
        state_dir = args.state_dir or work / "emulator"
        report = run_all(args, sizes, state_dir, work)
    report["total_seconds"] = round(time.monotonic() - started, 1)
    print_table(report)
    output = args.output or common.RESULTS_DIR / f"extract-{datetime.now().strftime('%Y-%m-%d')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nResults written to {output} ({report['total_seconds']} s in all)")
    return 0


def run_all(args: argparse.Namespace, sizes: list[int], state_dir: Path, work: Path) -> dict[str, Any]:
    """Prepare the emulator's tables and credentials, then measure every size."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tables = {size: f"bench_{size}" for size in sizes}
    for size, table in tables.items():
        seconds = common.generate_table(state_dir, table, size)
        print(f"generated {table} ({size} rows) in {seconds:.1f} s", flush=True)
    keypair = common.make_keypair(work / "keys")
    emulator = common.start_emulator(
        state_dir,
        concurrency_limit=args.concurrency_limit,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
    )
    with emulator:
        certificate_id = emulator.register_certificate(keypair)
        tba = emulator.register_tba_token()
        context = {
            "extra": emulator.m2m_extra(keypair, certificate_id),
            "tba": vars(tba),
            "max_concurrency": args.max_concurrency,
        }
        results = {str(size): run_size(emulator, args, tables[size], size, context) for size in sizes}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "latency_ms": args.latency_ms,
            "jitter_ms": args.jitter_ms,
            "concurrency_limit": args.concurrency_limit,
            "max_concurrency": args.max_concurrency,
            "page_size": PAGE_SIZE,
            "peer_paging": args.peer_paging,
            "python": sys.version.split()[0],
        },
        "baseline_rows": args.baseline_rows,
        "goals": {
            "ratio_to_ideal_min": GOAL_RATIO,
            "cpu_s_per_100k_rows_max": GOAL_CPU_PER_100K,
            "peak_rss_growth_mb_max": GOAL_MEMORY_GROWTH_MB,
        },
        "sizes": results,
        "notes": notes(args),
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child_main(json.loads(sys.stdin.read()))
        sys.exit(0)
    sys.exit(main())
