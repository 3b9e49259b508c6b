"""What queries and writes cost on the AWS deployment, itemized, from a ``bench/deployed.py`` run.

Reads the run's measured figures (latency as the billed Lambda duration, the function's memory,
requests per operation to DynamoDB and S3 by kind) and prices them at AWS's us-east-1 list
prices (below), for each front door (API Gateway REST or HTTP API) and architecture (x86_64 or
arm64). Free tiers and data transfer are left out; a request's client-side latency stands for
its billed duration (an upper bound: it includes the local HTTP round trip).

    .venv/bin/python bench/cost.py                          # bench/results/deployed.json
    .venv/bin/python bench/cost.py --run other.json --out bench/results/cost.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
MILLION = 1_000_000

# AWS list prices, us-east-1 (USD), as published for 2025–2026.
PRICES = {
    "api_gateway_rest_per_million": 3.50,  # REST API, first 333 million requests a month
    "api_gateway_http_per_million": 1.00,  # HTTP API, first 300 million (512 KB units)
    "lambda_requests_per_million": 0.20,
    "lambda_gb_second_x86_64": 0.0000166667,
    "lambda_gb_second_arm64": 0.0000133334,
    "dynamodb_read_units_per_million": 0.125,  # on-demand; a consistent read of ≤ 4 KB is 1
    "dynamodb_write_units_per_million": 0.625,  # on-demand; a write of ≤ 1 KB is 1
    "s3_get_per_million": 0.40,  # GET, HEAD ($0.0004 per 1,000)
    "s3_put_per_million": 5.00,  # PUT, POST, LIST ($0.005 per 1,000)
    "s3_storage_gb_month": 0.023,
    "sqs_per_million": 0.40,
}
READS = {"GetItem", "BatchGetItem", "Query", "Scan"}
S3_GETS = {"GET range", "GET whole", "HEAD"}


def request_dollars(by_kind: dict[str, dict[str, float]]) -> dict[str, float]:
    """Dollars of one operation's DynamoDB and S3 requests (each item taken as one unit)."""
    dynamodb = by_kind.get("dynamodb", {})
    s3 = by_kind.get("s3", {})
    reads = sum(n for kind, n in dynamodb.items() if kind in READS)
    writes = sum(n for kind, n in dynamodb.items() if kind not in READS)
    gets = sum(n for kind, n in s3.items() if kind in S3_GETS)
    puts = sum(n for kind, n in s3.items() if kind not in S3_GETS)
    return {
        "dynamodb_reads": reads * PRICES["dynamodb_read_units_per_million"] / MILLION,
        "dynamodb_writes": writes * PRICES["dynamodb_write_units_per_million"] / MILLION,
        "s3_gets": gets * PRICES["s3_get_per_million"] / MILLION,
        "s3_puts_and_lists": puts * PRICES["s3_put_per_million"] / MILLION,
    }


def per_million(
    milliseconds: float, memory_mb: int, by_kind: dict[str, dict[str, float]], door: str, arch: str
) -> dict[str, float]:
    """Dollars per million of one request taking ``milliseconds`` on a function of
    ``memory_mb``, sending ``by_kind``, through ``door`` (rest, http) on ``arch``."""
    gb_seconds = memory_mb / 1024 * milliseconds / 1000
    items = {
        "api_gateway": PRICES[f"api_gateway_{door}_per_million"] / MILLION,
        "lambda_requests": PRICES["lambda_requests_per_million"] / MILLION,
        "lambda_duration": gb_seconds * PRICES[f"lambda_gb_second_{arch}"],
        **request_dollars(by_kind),
    }
    dollars = {k: round(v * MILLION, 3) for k, v in items.items()}
    dollars["total"] = round(sum(items.values()) * MILLION, 2)
    return dollars


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--run", type=Path, default=RESULTS / "deployed.json")
    parser.add_argument("--out", type=Path, default=RESULTS / "cost.json")
    args = parser.parse_args()
    run: dict[str, Any] = json.loads(args.run.read_text())
    memory_mb = int(run["params"]["memory_mb"])
    warm = run["scenarios"]["warm"]
    writers = run["scenarios"]["writers"]["8"]
    add_size = writers["add_size"]
    shapes = {  # what one operation takes and sends
        f"warm query at {warm['rows']:,} rows": (
            warm["warm_queries"]["p50_ms"],
            warm["per_warm_query"]["by_kind"],
        ),
        "query on a fresh instance (queries 2-31)": (
            warm["queries_2_31"]["p50_ms"],
            warm["per_cold_phase_query"]["by_kind"],
        ),
        f"{add_size}-record add (8 writers)": (
            writers["add"]["p50_ms"],
            writers["per_acknowledged_add"]["by_kind"],
        ),
    }
    table: dict[str, Any] = {}
    for name, (milliseconds, by_kind) in shapes.items():
        table[name] = {
            f"{door}, {arch}": per_million(milliseconds, memory_mb, by_kind, door, arch)
            for door in ("rest", "http")
            for arch in ("x86_64", "arm64")
        }
    # Maintenance folds the adds into the table: its requests in the writers' run, per record.
    folded = writers["acknowledged_records"]
    maintenance = request_dollars(writers["maintenance_requests"]["by_kind"])
    result = {
        "run": str(args.run),
        "memory_mb": memory_mb,
        "prices": PRICES,
        "dollars_per_million_operations": table,
        "maintenance_requests_dollars_per_million_records": round(
            sum(maintenance.values()) / folded * MILLION, 3
        ),
        "per_million_records_written_http_arm64": round(
            table[f"{add_size}-record add (8 writers)"]["http, arm64"]["total"] / add_size
            + sum(maintenance.values()) / folded * MILLION,
            2,
        ),
        "storage_per_million_384d_records_gb_month": round(
            MILLION * (4 * 384 + 128) / 1e9 * PRICES["s3_storage_gb_month"], 3
        ),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name, doors in table.items():
        print(f"{name}: $ per million")
        for door, items in doors.items():
            parts = ", ".join(f"{k} {v}" for k, v in items.items() if k != "total")
            print(f"  {door:14} {items['total']:8.2f}   ({parts})")
    print(
        f"written records, per million (HTTP API, arm64, maintenance included): "
        f"${result['per_million_records_written_http_arm64']}"
    )
    print(
        f"storage, 1M × 384 records: ${result['storage_per_million_384d_records_gb_month']} a month"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
