"""What the benchmarks share: which stores to run, on which database, and where their figures go."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def postgres_url() -> str | None:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")


def store_urls(stores: list[str], tmp: str, name: str) -> Iterator[tuple[str, str]]:
    """(store, database URL) for each store asked for: SQLite in `tmp`; PostgreSQL from
    BENCH_DATABASE_URL or TEST_DATABASE_URL, skipped with a word when neither is set."""
    pg = postgres_url()
    for store in stores:
        if store == "postgres" and not pg:
            print("postgres: skipped (set BENCH_DATABASE_URL or TEST_DATABASE_URL)")
            continue
        yield store, f"sqlite+aiosqlite:///{tmp}/{name}.db" if store == "sqlite" else pg  # type: ignore[misc]


def write_results(name: str, results: list[dict[str, Any]], **fields: Any) -> None:
    """bench/results/<name>.json: the machine, any run options, and the results."""
    out = ROOT / "bench" / "results" / f"{name}.json"
    document = {"machine": f"{os.cpu_count()} cores", **fields, "results": results}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
