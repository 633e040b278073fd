"""One line per lake table: its name, its rows and a hash of their content, independent of row order.

Two lakes built from the same landing (say by the code before and after a refactor) must print the same
lines. The ``run_id`` column is left out (a lake built from a copy of the landing has the same run ids, but
a load of a fresh extract would not); no column records when a row was loaded.

    python -m bench.table_hashes DATA_DIR      # reads DATA_DIR/lake (or DATA_DIR itself if it is a lake)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from pipeline.schema import TABLES

LEFT_OUT = ("run_id",)


def table_hash(db: duckdb.DuckDBPyConnection, lake: Path, table: str) -> tuple[int, str]:
    """Rows and a hash of ``table``'s files in ``lake``: the sum (not xor, so that equal rows do not cancel
    out) of each row's hash, its partition columns included."""
    files = sorted(str(p) for p in (lake / table).glob("**/*.parquet"))
    if not files:
        return 0, "-"
    source = "read_parquet($files, hive_partitioning = true, hive_types_autocast = false, union_by_name = true)"
    names = [row[0] for row in db.execute(f"DESCRIBE SELECT * FROM {source}", {"files": files}).fetchall()]
    listed = ", ".join(f'"{c}"' for c in sorted(names) if c not in LEFT_OUT)
    count, total = db.execute(
        f"SELECT count(*), coalesce(sum(hash({listed})::HUGEINT), 0) % 18446744073709551616 FROM {source}",
        {"files": files},
    ).fetchall()[0]
    return int(count), f"{int(total):016x}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    args = parser.parse_args(argv)
    lake = args.data_dir / "lake" if (args.data_dir / "lake").is_dir() else args.data_dir
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    for table in sorted(TABLES):
        rows, digest = table_hash(db, lake, table)
        print(f"{table:<12} {rows:>9} {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
