"""The inventory lake: clean tables as Parquet files, one file per dataset and store, read by DuckDB.

Layout (Hive partitioning, so DuckDB and Ray Data read a dataset as one table):

    <root>/<dataset>/store_id=<S>/data.parquet

Writes are idempotent and keyed: `upsert` merges new rows into a store's file by the dataset's key
(a row with a known key replaces the old one, an identical row changes nothing), under a file lock,
and replaces the file atomically (write a temporary file, then `os.replace`). A crash mid-write
leaves the previous file intact, and readers never see half a file. Derived tables (forecasts) are
replaced per store with `replace`.

Why Parquet and not Redis: sales history is columnar and large (stores x SKUs x days); DuckDB scans it
in place, and the batch forecast reads it with Ray Data. Redis keeps the live state (shelf gaps,
alerts).

Example:
    >>> lake = InventoryLake(tmp)  # doctest: +SKIP
    >>> lake.upsert(SALES, table).new  # doctest: +SKIP
    120
    >>> lake.connect().sql("select sum(quantity) from sales").fetchall()  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workloads.inventory.tables import SPECS, Dataset, TableSpec

FILE = "data.parquet"
ALL_STORES = "_all"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class UpsertStats:
    new: int = 0  #: rows whose key was not stored
    updated: int = 0  #: rows that replaced a stored row with other values
    unchanged: int = 0  #: rows identical to the stored row (a re-import)
    stores: int = 0  #: store files written

    def __iadd__(self, other: UpsertStats) -> UpsertStats:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.stores += other.stores
        return self


class InventoryLake:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def partition(self, name: str, store_id: str) -> Path:
        """Folder of one store's file; chain-wide calendar rows (store `*`) live under `store_id=_all`."""
        part = ALL_STORES if store_id == "*" else store_id
        if not _SAFE.match(part):
            raise ValueError(f"store id {store_id!r} cannot name a lake partition")
        return self.root / name / f"store_id={part}"

    def stores(self, name: str) -> list[str]:
        base = self.root / name
        if not base.is_dir():
            return []
        names = (p.name.removeprefix("store_id=") for p in base.iterdir() if (p / FILE).is_file())
        return sorted("*" if n == ALL_STORES else n for n in names)

    def files(self, name: str) -> list[Path]:
        return [self.partition(name, s) / FILE for s in self.stores(name)]

    @contextmanager
    def _locked(self, name: str, store_id: str) -> Iterator[Path]:
        part = self.partition(name, store_id)
        part.mkdir(parents=True, exist_ok=True)
        with open(part / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield part
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _write(part: Path, table: pa.Table) -> None:
        fd, tmp = tempfile.mkstemp(dir=part, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, part / FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, name: str, store_id: str | None = None, schema: pa.Schema | None = None) -> pa.Table:
        """One store's rows, or every store's (the partition column is part of the stored table)."""
        paths = [self.partition(name, store_id) / FILE] if store_id else self.files(name)
        paths = [p for p in paths if p.is_file()]
        if not paths:
            if schema is None and name in {d.value for d in Dataset}:
                schema = SPECS[Dataset(name)].arrow_schema()
            return schema.empty_table() if schema is not None else pa.table({})
        return pa.concat_tables([pq.read_table(p) for p in paths])

    def upsert(self, spec: TableSpec, table: pa.Table) -> UpsertStats:
        """Merge clean rows into each store's file by the dataset's key; returns what changed."""
        table = table.cast(spec.arrow_schema())
        total = UpsertStats()
        if table.num_rows == 0:
            return total
        for store_id in sorted(set(table.column("store_id").to_pylist())):
            rows = table.filter(pc.equal(table.column("store_id"), store_id))
            total += self._upsert_store(spec, store_id, rows)
        return total

    def _upsert_store(self, spec: TableSpec, store_id: str, new: pa.Table) -> UpsertStats:
        key = ", ".join(f'"{k}"' for k in spec.key)
        with self._locked(spec.dataset.value, store_id) as part:
            path = part / FILE
            old = pq.read_table(path).cast(spec.arrow_schema()) if path.is_file() else spec.arrow_schema().empty_table()
            con = duckdb.connect()
            try:
                con.register("old", old)
                con.register("new", new)
                known = con.execute(f"select count(*) from new semi join old using ({key})").fetchall()[0][0]
                same = con.execute(
                    "select count(*) from (select * from new intersect all select * from old)"
                ).fetchall()[0][0]
                merged = con.sql(
                    f"select * from new union all (select * from old anti join new using ({key})) order by {key}"
                ).to_arrow_table()
            finally:
                con.close()
            stats = UpsertStats(new=new.num_rows - known, updated=known - same, unchanged=same, stores=1)
            if stats.new or stats.updated:
                self._write(part, merged.cast(spec.arrow_schema()))
            return stats

    def replace(self, name: str, store_id: str, table: pa.Table) -> None:
        """Replace a store's derived table (e.g. its latest forecasts) atomically."""
        with self._locked(name, store_id) as part:
            self._write(part, table)

    def connect(self, extra: dict[str, pa.Table] | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per dataset over its Parquet files (empty when none yet),
        `latest_stock` (each store x SKU's newest snapshot) and any `extra` tables registered by name."""
        con = duckdb.connect()
        for ds in Dataset:
            self._view(con, ds.value, SPECS[ds].arrow_schema())
        for name, schema in DERIVED.items():
            self._view(con, name, schema)
        con.execute(
            "create view latest_stock as select * from snapshots "
            "qualify row_number() over (partition by store_id, sku order by snapshot_at desc) = 1"
        )
        for name, table in (extra or {}).items():
            con.register(name, table)
        return con

    def _view(self, con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
        files = self.files(name)
        if files:
            listing = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            cols = ", ".join(f'"{f.name}"' for f in schema)
            con.execute(f"create view {name} as select {cols} from read_parquet([{listing}], union_by_name=true)")
        else:
            con.register(f"_empty_{name}", schema.empty_table())
            con.execute(f"create view {name} as select * from _empty_{name}")


#: derived tables the batch forecast writes (name -> schema), readable like the datasets
DERIVED: dict[str, pa.Schema] = {
    "forecasts": pa.schema([
        ("store_id", pa.string()), ("sku", pa.string()), ("date", pa.date32()), ("yhat", pa.float64()),
        ("model", pa.string()), ("run_id", pa.string()),
    ]),
    "forecast_series": pa.schema([
        ("store_id", pa.string()), ("sku", pa.string()), ("model", pa.string()), ("sigma", pa.float64()),
        ("mean_daily", pa.float64()), ("history_days", pa.int64()), ("last_date", pa.date32()),
        ("run_id", pa.string()), ("generated_at", pa.timestamp("us")),
    ]),
}
