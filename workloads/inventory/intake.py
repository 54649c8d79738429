"""Imports: CSV, Parquet or JSON rows -> cleaning -> the lake, with a report of every bad row.

Files are read as strings (the cleaning step owns every type decision, so a bad cell is reported
rather than silently coerced by a reader), checked against the dataset's spec and stored only when
the file as a whole is acceptable (see `CleaningRules.max_rejected_share`). Storing is keyed and
idempotent, so importing the same file twice reports `unchanged` rows and changes nothing.

Example:
    >>> report = import_file(lake, "sales.csv", Dataset.SALES)  # doctest: +SKIP
    >>> report.rows_rejected, report.stored.new  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from workloads.inventory.cleaning import CleanResult, Issue, Severity, clean
from workloads.inventory.lake import InventoryLake, UpsertStats
from workloads.inventory.settings import CleaningRules
from workloads.inventory.tables import SPECS, Dataset

Progress = Callable[[int, int], None]  #: (done, total) in bytes read or rows, for progress bars
CHUNK_ROWS = 100_000


class StoredCounts(BaseModel):
    new: int = Field(0, description="Rows whose key was not stored before.")
    updated: int = Field(0, description="Rows that replaced a stored row with other values.")
    unchanged: int = Field(0, description="Rows identical to what was stored (a repeated import).")


class ImportReport(BaseModel):
    file: str
    dataset: Dataset
    rows_read: int
    rows_accepted: int = Field(description="Rows that passed validation (after the cleaning rules).")
    rows_rejected: int = Field(description="Rows with an error; listed in `issues`.")
    rows_dropped: int = Field(0, description="Rows a rule removed without error (duplicates kept once, returns).")
    stored: StoredCounts = Field(default_factory=StoredCounts)
    aborted: str | None = Field(None, description="Why nothing of the file was stored, if so.")
    errors: int = 0
    warnings: int = 0
    issues: list[Issue] = Field(default_factory=list, description="Every problem, with file, row, column, reason.")

    @classmethod
    def of(cls, res: CleanResult, stored: UpsertStats | None) -> ImportReport:
        return cls(
            file=res.source, dataset=res.spec.dataset, rows_read=res.rows_read,
            rows_accepted=res.rows_accepted if not res.aborted else 0, rows_rejected=res.rows_rejected,
            rows_dropped=res.rows_dropped, aborted=res.aborted,
            stored=StoredCounts(new=stored.new, updated=stored.updated, unchanged=stored.unchanged) if stored else
            StoredCounts(),
            errors=sum(i.severity is Severity.ERROR for i in res.issues),
            warnings=sum(i.severity is Severity.WARNING for i in res.issues),
            issues=res.issues,
        )


class ReadError(ValueError):
    """A file that cannot be read at all (not found, not CSV/Parquet); names the file and why."""


def read_csv(data: bytes | str | Path, source: str, progress: Progress | None = None) -> tuple[pd.DataFrame,
                                                                                                list[Issue]]:
    """All cells as strings; rows with the wrong number of fields become issues, not exceptions."""
    if isinstance(data, Path):
        try:
            total = data.stat().st_size
            handle: io.TextIOBase = open(data, encoding="utf-8-sig", newline="")  # noqa: SIM115
        except OSError as e:
            raise ReadError(f"{source}: cannot read: {e.strerror}") from None
    else:
        raw = data.encode() if isinstance(data, str) else data
        total = len(raw)
        try:
            handle = io.StringIO(raw.decode("utf-8-sig"), newline="")
        except UnicodeDecodeError as e:
            raise ReadError(f"{source}: not UTF-8 text (byte {e.start}); export the CSV as UTF-8") from None
    done = 0

    def lines() -> Iterator[str]:
        nonlocal done
        for n, line in enumerate(handle, 1):
            done += len(line)
            if progress and n % 20_000 == 0:
                progress(min(done, total), total)
            yield line

    with handle:
        try:
            return _parse_csv(csv.reader(lines()), source, progress, total)
        except UnicodeDecodeError as e:
            raise ReadError(f"{source}: not UTF-8 text near byte {done + e.start}; export the CSV as UTF-8") from None
        except csv.Error as e:
            raise ReadError(f"{source}: not readable as CSV: {e}") from None


def _parse_csv(reader: Any, source: str, progress: Progress | None, total: int) -> tuple[pd.DataFrame, list[Issue]]:
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise ReadError(f"{source}: empty file or no header row")
    width = len(header)
    cols: list[list[str]] = [[] for _ in range(width)]
    rownums: list[int] = []
    issues: list[Issue] = []
    row = 0
    for rec in reader:
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue  # blank line
        row += 1
        if len(rec) != width:
            issues.append(Issue(file=source, row=row, column=None,
                                reason=f"expected {width} fields like the header, found {len(rec)}"))
            continue
        rownums.append(row)
        for c, v in zip(cols, rec, strict=True):
            c.append(v)
    if progress:
        progress(total, total)
    df = pd.DataFrame({h: c for h, c in zip(_unique(header), cols, strict=True)}, dtype="object")
    df.index = pd.Index(rownums, name="row")
    return df, issues


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in header:
        n = seen.get(h, 0)
        seen[h] = n + 1
        out.append(h if n == 0 else f"{h}.{n}")
    return out


def read_parquet(path: Path, source: str, progress: Progress | None = None) -> tuple[pd.DataFrame, list[Issue]]:
    """All cells as strings (cast by Arrow), so Parquet and CSV go through the same checks."""
    try:
        f = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise ReadError(f"{source}: not a readable Parquet file: {e}") from None
    total = f.metadata.num_rows
    parts, done = [], 0
    for batch in f.iter_batches(batch_size=CHUNK_ROWS):
        cols = {}
        for name, arr in zip(batch.schema.names, batch.columns, strict=True):
            if pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
                arr = arr.cast(pa.timestamp(arr.type.unit))  # stored as UTC instants: keep them UTC
                cols[name] = pc.strftime(arr, "%Y-%m-%dT%H:%M:%S+00:00")
            else:
                cols[name] = arr.cast(pa.string())
        parts.append(pa.table(cols).to_pandas().fillna(""))
        done += batch.num_rows
        if progress:
            progress(done, total)
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=f.schema_arrow.names)
    df.index = pd.Index(range(1, len(df) + 1), name="row")
    return df.astype("object"), []


def rows_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """JSON rows (an API upload) as strings; absent keys and nulls are empty cells."""
    rows = list(rows)
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    data = {n: ["" if r.get(n) is None else str(r.get(n)).lower() if isinstance(r.get(n), bool) else str(r.get(n))
                for r in rows] for n in names}
    df = pd.DataFrame(data, dtype="object")
    df.index = pd.Index(range(1, len(rows) + 1), name="row")
    return df


def clean_frame(
    raw: pd.DataFrame,
    dataset: Dataset,
    source: str,
    rules: CleaningRules | None = None,
    stores: Mapping[str, str] | None = None,
    store_id: str | None = None,
    read_issues: list[Issue] | None = None,
) -> CleanResult:
    """Clean a frame whose index holds the 1-based data row numbers (gaps where rows were unreadable)."""
    rownums = raw.index.to_numpy()
    res = clean(raw.reset_index(drop=True), SPECS[dataset], source, rules, stores, store_id)
    # `clean` numbers rows 1..n; map back to the file's row numbers (unreadable rows leave gaps)
    for i in res.issues:
        if i.row is not None:
            i.row = int(rownums[i.row - 1])
    if read_issues:
        res.issues = sorted([*read_issues, *res.issues], key=lambda i: (i.row or 0))
        res.rows_rejected += len(read_issues)
        res.rows_read += len(read_issues)
        share = res.rows_rejected / max(res.rows_read, 1)
        if not res.aborted and share > (rules or CleaningRules()).max_rejected_share:
            res.aborted = (f"{res.rows_rejected} of {res.rows_read} rows rejected, more than max_rejected_share: "
                           "nothing stored (wrong file or format?)")
    return res


def store_result(lake: InventoryLake, res: CleanResult) -> ImportReport:
    """Write an accepted result to the lake (nothing when the file was aborted)."""
    if res.aborted:
        return ImportReport.of(res, None)
    return ImportReport.of(res, lake.upsert(res.spec, res.table))


def import_file(
    lake: InventoryLake,
    path: str | Path,
    dataset: Dataset,
    rules: CleaningRules | None = None,
    stores: Mapping[str, str] | None = None,
    store_id: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Read, clean and store one CSV or Parquet file (by extension; `.parquet` / `.pq`, else CSV)."""
    p = Path(path)
    if not p.is_file():
        raise ReadError(f"{p}: no such file")
    if p.suffix.lower() in (".parquet", ".pq"):
        raw, read_issues = read_parquet(p, p.name, progress)
    else:
        raw, read_issues = read_csv(p, p.name, progress)
    return store_result(lake, clean_frame(raw, dataset, p.name, rules, stores, store_id, read_issues))


def import_bytes(
    lake: InventoryLake,
    body: bytes,
    fmt: str,
    dataset: Dataset,
    source: str,
    rules: CleaningRules | None = None,
    stores: Mapping[str, str] | None = None,
    store_id: str | None = None,
) -> ImportReport:
    """An upload's body (`csv`, `parquet` or `json` rows) through the same checks as a file."""
    if fmt == "csv":
        raw, read_issues = read_csv(body, source)
    elif fmt == "parquet":
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
            tmp.write(body)
            tmp.flush()
            raw, read_issues = read_parquet(Path(tmp.name), source)
    elif fmt == "json":
        import json

        try:
            rows = json.loads(body)
        except ValueError as e:
            raise ReadError(f"{source}: not JSON: {e}") from None
        if isinstance(rows, dict) and "rows" in rows:
            rows = rows["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ReadError(f"{source}: expected a JSON list of row objects (or {{\"rows\": [...]}})")
        raw, read_issues = rows_frame(rows), []
    else:
        raise ReadError(f"{source}: unknown format {fmt!r} (csv, parquet or json)")
    return store_result(lake, clean_frame(raw, dataset, source, rules, stores, store_id, read_issues))
