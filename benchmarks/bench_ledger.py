"""Ledger: the cost of recording accepted requests into a ledger of M entries, and of reading it.

Recording must cost O(1) in the ledger's size (design.md §3): each record is one line appended
to the journal, made durable in batches with the records written at the same time (group
commit), in a worker thread. This script builds a folder ledger of M entries (M up to 100k,
spread over 100 accounts, and all in one account), then records N accepted requests the way
``apply`` does: waves of concurrent records (a wave per queue's worth of loads), each record
awaited before the next request of its model. It reports the time per record (flat in M), the
run's final compaction, and reading the ledger back (time and peak traced memory).

    python benchmarks/bench_ledger.py [--records N] [--sizes 1000,10000,100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from reconciler.core.ledger_entries import LedgerEntry
from reconciler.ledger import FolderLedger

STAMP = "2026-11-25T10:00:00Z"
SPEC = {
    "url": "wavymulder/Analog-Diffusion",
    "model_format": "diffusers",
    "model_category": "stable_diffusion",
    "revision": "fp16",
}


def entry(n: int, outcome: str = "ready") -> LedgerEntry:
    return LedgerEntry(
        spec_hash=f"sha256:{n:016x}", spec=dict(SPEC), applied_at=STAMP, outcome=outcome
    )


def build(folder: Path, size: int, accounts: int) -> None:
    """A ledger of ``size`` entries over ``accounts`` accounts, written by one session."""
    per = size // accounts

    async def main() -> None:
        with FolderLedger(folder).session() as session:
            for a in range(accounts):
                for m in range(per):
                    session._accounts.setdefault(f"acct-{a:03d}", {})[f"m{m:06d}"] = entry(m)
                session._touched.add(f"acct-{a:03d}")

    anyio.run(main)


def record(folder: Path, records: int, accounts: int, wave: int) -> tuple[float, float]:
    """Record ``records`` accepted requests in waves of ``wave``; (per record s, close s)."""
    started = 0.0
    recorded = 0.0

    async def main() -> None:
        nonlocal started, recorded
        with FolderLedger(folder).session() as session:
            started = time.perf_counter()
            for start in range(0, records, wave):
                async with anyio.create_task_group() as group:
                    for n in range(start, min(records, start + wave)):
                        account = f"acct-{n % accounts:03d}"
                        group.start_soon(
                            session.record, account, f"new{n:06d}", entry(n, "applied")
                        )
            recorded = time.perf_counter()

    anyio.run(main)
    closed = time.perf_counter()
    return (recorded - started) / records, closed - recorded


def read(folder: Path) -> tuple[float, float, int]:
    """Read the whole ledger: (seconds, peak traced MiB of a second, traced read, entries)."""
    started = time.perf_counter()
    state = FolderLedger(folder).read()
    elapsed = time.perf_counter() - started
    count = sum(len(models) for models in state.accounts.values())
    del state
    tracemalloc.start()
    FolderLedger(folder).read()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return elapsed, peak, count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000, help="accepted requests (1000)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="ledger sizes M")
    parser.add_argument("--wave", type=int, default=50, help="concurrent records per wave")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for accounts in (100, 1):
            with tempfile.TemporaryDirectory() as temp:
                folder = Path(temp) / "ledger"
                build(folder, size, accounts)
                per_record, close = record(folder, args.records, accounts, args.wave)
                read_s, peak, count = read(folder)
            rows.append(
                {
                    "entries": size,
                    "accounts": accounts,
                    "records": args.records,
                    "ms_per_record": round(per_record * 1000, 3),
                    "compaction_s": round(close, 3),
                    "read_s": round(read_s, 3),
                    "read_peak_mib": round(peak, 1),
                    "read_entries": count,
                }
            )
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    header = ("entries", "accounts", "ms_per_record", "compaction_s", "read_s", "read_peak_mib")
    print("  ".join(f"{h:>14}" for h in header))
    for row in rows:
        print("  ".join(f"{row[h]!s:>14}" for h in header))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
