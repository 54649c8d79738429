"""Validation and cleaning of imported rows: every bad row is reported with file, row, column and reason.

Input is a frame of raw strings as read from a CSV, Parquet or JSON upload (see `intake`); output is
a typed frame with exactly the dataset's columns (`tables.TableSpec`) plus the list of issues.
Rows with an error are rejected; known problems are handled by the explicit rules of
`settings.CleaningRules` (duplicates, negative stock, returns, shelf + backroom != on_hand, cases
vs units), each reported as a warning naming the rule. Nothing is written here: the lake stores
what this returns, and only if the file as a whole is acceptable.

Rows are numbered from 1 for the first data row (the header is not counted; in a spreadsheet the
row is on line `row + 1`).

Example:
    >>> import pandas as pd
    >>> from workloads.inventory.tables import SALES
    >>> raw = pd.DataFrame({"store_id": ["S1", "S1"], "sku": ["A", "B"], "date": ["2026-03-02", "2026-03-0x"],
    ...                     "quantity": ["4", "2"]})
    >>> res = clean(raw, SALES, "sales.csv")
    >>> len(res.table), [str(i) for i in res.issues]
    (1, ["sales.csv row 2, column date: not an ISO date (YYYY-MM-DD): '2026-03-0x'"])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field

from workloads.inventory.settings import CleaningRules
from workloads.inventory.tables import (
    CALENDAR_KINDS,
    DELIVERY_STATUSES,
    UNITS,
    Column,
    Dataset,
    TableSpec,
    canonical_column,
)

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}
#: quantity columns converted from cases to units, per dataset
_QUANTITIES: dict[Dataset, tuple[str, ...]] = {
    Dataset.SNAPSHOTS: ("on_hand", "backroom_units", "shelf_units"),
    Dataset.SALES: ("quantity",),
    Dataset.DELIVERIES: ("quantity",),
    Dataset.CALENDAR: (),
}


class Severity(StrEnum):
    ERROR = "error"  #: the row is rejected
    WARNING = "warning"  #: a rule changed or dropped the row; the report says which


class Issue(BaseModel):
    file: str = Field(description="The file (or upload) the row came from.")
    row: int | None = Field(description="1-based data row (header not counted); null for file-level problems.")
    column: str | None = Field(description="The column at fault (canonical name), null when it is the whole row.")
    reason: str = Field(description="What is wrong, with the offending value.")
    severity: Severity = Severity.ERROR
    rule: str | None = Field(None, description="The cleaning rule that handled it, e.g. `negative_stock=clamp`.")

    def __str__(self) -> str:
        where = self.file + (f" row {self.row}" if self.row is not None else "")
        where += f", column {self.column}" if self.column else ""
        tag = f" [{self.severity}, {self.rule}]" if self.rule else ""
        return f"{where}: {self.reason}{tag}"


@dataclass
class CleanResult:
    spec: TableSpec
    source: str
    table: pa.Table  #: clean rows, exactly the spec's columns and types
    issues: list[Issue] = field(default_factory=list)
    rows_read: int = 0
    rows_rejected: int = 0  #: rows with an error
    rows_dropped: int = 0  #: rows a rule removed without an error (duplicates, returns)
    aborted: str | None = None  #: why nothing of the file is usable (missing column, too many errors)

    @property
    def rows_accepted(self) -> int:
        return self.table.num_rows

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity is Severity.ERROR]


class _Collector:
    """Issues keyed to data rows, and the set of rows rejected so far."""

    def __init__(self, source: str, rows: np.ndarray) -> None:
        self.source, self.rows = source, rows
        self.issues: list[Issue] = []
        self.bad = np.zeros(len(rows), dtype=bool)

    def add(self, mask: np.ndarray, column: str | None, reasons: list[str] | str,
            severity: Severity = Severity.ERROR, rule: str | None = None) -> None:
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        texts = [reasons] * len(idx) if isinstance(reasons, str) else reasons
        for i, text in zip(idx, texts, strict=True):
            self.issues.append(Issue(file=self.source, row=int(self.rows[i]), column=column, reason=text,
                                     severity=severity, rule=rule))
        if severity is Severity.ERROR:
            self.bad[idx] = True

    def file_level(self, reason: str, column: str | None = None, severity: Severity = Severity.ERROR) -> None:
        self.issues.append(Issue(file=self.source, row=None, column=column, reason=reason, severity=severity))


def _q(values: pd.Series, mask: np.ndarray) -> list[str]:
    return [repr(v) for v in values[mask]]


def _parse(col: Column, raw: pd.Series, out: _Collector, tz_of: pd.Series | None) -> pd.Series:
    """Typed values of one column; cells that do not parse are reported and left null."""
    s = raw.fillna("").astype(str).str.strip()
    empty = (s == "").to_numpy()
    if col.required:
        out.add(empty, col.name, "missing value")
    if col.kind == "str":
        return s.where(~empty, col.default if col.default is not None else "")
    if col.kind in ("int", "float"):
        num = pd.to_numeric(s.where(~empty), errors="coerce").astype("float64")
        bad = (num.isna().to_numpy() | ~np.isfinite(num.fillna(0).to_numpy())) & ~empty
        out.add(bad, col.name, [f"not a number: {v}" for v in _q(s, bad)])
        if col.kind == "int":
            frac = (~bad) & ~empty & (num.fillna(0) % 1 != 0).to_numpy()
            out.add(frac, col.name, [f"not a whole number of units: {v}" for v in _q(s, frac)])
            bad = bad | frac
        num = num.where(~bad)
        if col.default is not None:
            num = num.where(~empty, float(col.default))  # type: ignore[arg-type]
        return num
    if col.kind == "bool":
        low = s.str.lower()
        bad = ~low.isin(_TRUE | _FALSE).to_numpy()
        out.add(bad, col.name, [f"not a yes/no value: {v}" for v in _q(s, bad)])
        return low.isin(_TRUE)
    if col.kind == "date":
        d = pd.to_datetime(s.where(~empty), format="%Y-%m-%d", errors="coerce")
        bad = d.isna().to_numpy() & ~empty
        out.add(bad, col.name, [f"not an ISO date (YYYY-MM-DD): {v}" for v in _q(s, bad)])
        return d
    # timestamp: ISO-8601, with or without an offset; naive ones are in the store's time zone
    vals: list[datetime | None] = []
    bad_list: list[bool] = []
    zones = tz_of.to_numpy() if tz_of is not None else None
    for i, text in enumerate(s.to_numpy()):
        if not text:
            vals.append(None)
            bad_list.append(False)
            continue
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            vals.append(None)
            bad_list.append(True)
            continue
        if t.tzinfo is None:
            t = t.replace(tzinfo=ZoneInfo(zones[i]) if zones is not None else UTC)
        vals.append(t.astimezone(UTC).replace(tzinfo=None))
        bad_list.append(False)
    bad = np.array(bad_list, dtype=bool)
    out.add(bad, col.name, [f"not an ISO-8601 date or time: {v}" for v in _q(s, bad)])
    return pd.Series(pd.to_datetime(pd.Series(vals, dtype="object")), index=raw.index)


def clean(
    raw: pd.DataFrame,
    spec: TableSpec,
    source: str,
    rules: CleaningRules | None = None,
    stores: Mapping[str, str] | None = None,
    store_id: str | None = None,
    first_row: int = 1,
) -> CleanResult:
    """Validate and clean raw string rows of one file.

    Args:
        raw: the file's cells as read (headers as in the file), one row per data row.
        spec: the dataset the rows belong to.
        source: file name (or upload name) used in every issue.
        rules: cleaning rules (defaults when None).
        stores: store id -> IANA time zone of the fleet's stores; other store ids are rejected.
            None accepts any store and reads naive times as UTC.
        store_id: the store an upload is for: rows of other stores are rejected and a missing
            `store_id` column means this store.
        first_row: data row number of `raw`'s first row (when a big file is cleaned in chunks).
    """
    rules = rules or CleaningRules()
    rows = np.arange(first_row, first_row + len(raw))
    out = _Collector(source, rows)
    result = CleanResult(spec, source, spec.arrow_schema().empty_table(), rows_read=len(raw))

    mapping: dict[str, str] = {}
    for header in raw.columns:
        name = canonical_column(str(header), spec)
        if name is None:
            out.file_level(f"unknown column {header!r} ignored (a {spec.dataset} file has: {', '.join(spec.names)})",
                           str(header), Severity.WARNING)
        elif name in mapping.values():
            other = next(h for h, n in mapping.items() if n == name)
            out.file_level(f"columns {other!r} and {header!r} both mean {name!r}", name)
            result.aborted = f"two columns mean {name!r}"
        else:
            mapping[str(header)] = name
    df = raw.rename(columns={h: n for h, n in mapping.items()})[list(mapping.values())]
    if store_id is not None:  # an upload for one store: a missing or empty store_id means that store
        if "store_id" not in df.columns:
            df = df.assign(store_id=store_id)
        else:
            df["store_id"] = df["store_id"].where(df["store_id"].fillna("").astype(str).str.strip() != "", store_id)
    missing = [c.name for c in spec.columns if c.required and c.name not in df.columns]
    for name in missing:
        col = spec.column(name)
        also = f" (also accepted: {', '.join(col.aliases)})" if col.aliases else ""
        out.file_level(f"required column {name!r} is missing{also}", name)
    if missing:
        result.aborted = f"missing required column(s): {', '.join(missing)}"
    if result.aborted:
        result.issues, result.rows_rejected = out.issues, len(raw)
        return result

    # store ids first: naive times are read in the store's time zone
    sid = df["store_id"].fillna("").astype(str).str.strip() if "store_id" in df.columns else None
    tz_of = None
    if sid is not None and stores is not None:
        tz_of = sid.map(lambda s: stores.get(s, "UTC"))
    typed: dict[str, pd.Series] = {}
    for col in spec.columns:
        if col.name in df.columns:
            typed[col.name] = _parse(col, df[col.name], out, tz_of)
        else:
            typed[col.name] = pd.Series([col.default] * len(df), index=df.index, dtype="object")
    t = pd.DataFrame(typed, index=df.index)

    _check_store(spec, t, out, stores, store_id)
    _convert_units(spec, t, out, rules)
    if spec.dataset is Dataset.SNAPSHOTS:
        _snapshot_rules(t, out, rules)
    elif spec.dataset is Dataset.SALES:
        _sales_rules(t, out, rules)
    elif spec.dataset is Dataset.DELIVERIES:
        _delivery_rules(t, out)
    else:
        _calendar_rules(t, out)

    keep = ~out.bad & ~t.pop("_drop").to_numpy() if "_drop" in t else ~out.bad
    result.rows_rejected = int(out.bad.sum())
    kept = t[keep]
    kept_rows = rows[keep]
    kept = _dedupe(spec, kept, kept_rows, out, rules)
    result.rows_rejected = int(out.bad.sum())
    result.rows_dropped = int((~out.bad).sum()) - len(kept)
    result.issues = out.issues
    if len(raw) and result.rows_rejected / len(raw) > rules.max_rejected_share:
        result.aborted = (f"{result.rows_rejected} of {len(raw)} rows rejected, more than max_rejected_share="
                          f"{rules.max_rejected_share}: nothing stored (wrong file or format?)")
        return result
    result.table = to_arrow(kept, spec)
    return result


def to_arrow(df: pd.DataFrame, spec: TableSpec) -> pa.Table:
    """A typed frame as an Arrow table with exactly the spec's schema."""
    arrays = []
    for col in spec.columns:
        s = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), dtype="object")
        typ = spec.arrow_schema().field(col.name).type
        if col.kind in ("date", "timestamp"):
            arr = pa.array(pd.to_datetime(s).to_numpy(dtype="datetime64[us]"), type=pa.timestamp("us"))
            arrays.append(arr.cast(typ) if col.kind == "date" else arr)
        elif col.kind == "int":
            arrays.append(pa.array(pd.to_numeric(s).astype("Int64"), type=typ))
        elif col.kind == "float":
            arrays.append(pa.array(pd.to_numeric(s).astype("float64"), type=typ, from_pandas=True))
        elif col.kind == "bool":
            arrays.append(pa.array(s.astype(bool), type=typ))
        else:
            arrays.append(pa.array(s.astype(str), type=typ))
    return pa.Table.from_arrays(arrays, schema=spec.arrow_schema())


def _check_store(spec: TableSpec, t: pd.DataFrame, out: _Collector, stores: Mapping[str, str] | None,
                 store_id: str | None) -> None:
    sid = t["store_id"].astype(str)
    if spec.dataset is Dataset.CALENDAR:
        t["store_id"] = sid = sid.replace("", "*")
        t["sku"] = t["sku"].astype(str).replace("", "*")
        wildcard = (sid == "*").to_numpy()
    else:
        wildcard = np.zeros(len(t), dtype=bool)
    filled = (sid != "").to_numpy()
    if store_id is not None:
        other = filled & ~wildcard & (sid != store_id).to_numpy()
        out.add(other, "store_id", [f"store {v} does not match this upload's store {store_id!r}"
                                    for v in _q(sid, other)])
    if stores is not None:
        unknown = filled & ~wildcard & ~sid.isin(list(stores)).to_numpy()
        out.add(unknown, "store_id", [f"unknown store {v} (not in the fleet config)" for v in _q(sid, unknown)])
    for c in ("store_id", "sku"):
        brace = t[c].astype(str).str.contains(r"[{}]", regex=True).to_numpy()
        out.add(brace, c, f"{c} may not contain braces")


def _convert_units(spec: TableSpec, t: pd.DataFrame, out: _Collector, rules: CleaningRules) -> None:
    cols = _QUANTITIES[spec.dataset]
    if not cols:
        return
    unit = t["unit"].astype(str).str.strip().str.lower().replace("", "units")
    known = unit.isin(list(UNITS)).to_numpy()
    out.add(~known, "unit", [f"unknown unit {v} (use units or cases)" for v in _q(t["unit"].astype(str), ~known)])
    pack = pd.to_numeric(t["pack_size"], errors="coerce").fillna(1)
    bad_pack = (pack < 1).to_numpy()
    out.add(bad_pack, "pack_size", [f"pack_size must be at least 1, got {v}" for v in _q(pack, bad_pack)])
    cases = known & (unit.map(lambda u: UNITS.get(u, 1)) == 0).to_numpy() & ~bad_pack
    for c in cols:
        v = pd.to_numeric(t[c], errors="coerce")
        t[c] = v.where(~cases, v * pack)
    t["unit"] = "units"
    if cases.any():
        out.add(cases, "unit", "quantities in cases converted to units (x pack_size)", Severity.WARNING,
                "unit=cases")


def _snapshot_rules(t: pd.DataFrame, out: _Collector, rules: CleaningRules) -> None:
    oh, bk, sh = (pd.to_numeric(t[c], errors="coerce") for c in ("on_hand", "backroom_units", "shelf_units"))
    for name, s in (("on_hand", oh), ("backroom_units", bk), ("shelf_units", sh)):
        neg = (s < 0).fillna(False).to_numpy()
        if rules.negative_stock == "clamp":
            out.add(neg, name, [f"negative stock {v} stored as 0" for v in _q(s, neg)], Severity.WARNING,
                    "negative_stock=clamp")
            s[neg] = 0
        else:
            out.add(neg, name, [f"negative stock {v}" for v in _q(s, neg)], rule="negative_stock=reject")
    no_total = oh.isna().to_numpy()
    no_parts = bk.isna().to_numpy() | sh.isna().to_numpy()
    out.add(no_total & no_parts, None, "needs on_hand, or both shelf_units and backroom_units")
    derive_total = no_total & ~no_parts
    oh[derive_total] = (bk + sh)[derive_total]
    one_part = ~no_total & (bk.isna() ^ sh.isna()).to_numpy()
    bk = bk.where(~(one_part & bk.isna().to_numpy()), oh - sh)
    sh = sh.where(~(one_part & sh.isna().to_numpy()), oh - bk)
    over = one_part & ((bk < 0) | (sh < 0)).fillna(False).to_numpy()
    out.add(over, None, [f"shelf or backroom count exceeds on_hand {v}" for v in _q(oh, over)])
    both = ~no_total & ~no_parts
    diff = (oh - (bk + sh)).abs().fillna(0)
    mism = both & (diff > rules.count_tolerance).to_numpy()
    if mism.any():
        texts = [f"on_hand {int(a)} != shelf_units {int(s)} + backroom_units {int(b)}"
                 for a, s, b in zip(oh[mism], sh[mism], bk[mism], strict=True)]
        if rules.count_mismatch == "reject":
            out.add(mism, "on_hand", texts, rule="count_mismatch=reject")
        elif rules.count_mismatch == "parts":
            out.add(mism, "on_hand", [x + ": on_hand set to the sum" for x in texts], Severity.WARNING,
                    "count_mismatch=parts")
            oh[mism] = (bk + sh)[mism]
        else:
            out.add(mism, "backroom_units", [x + ": backroom set to on_hand - shelf" for x in texts],
                    Severity.WARNING, "count_mismatch=total")
            sh[mism] = np.minimum(sh[mism], oh[mism])
            bk[mism] = (oh - sh)[mism]
    t["on_hand"], t["backroom_units"], t["shelf_units"] = oh, bk, sh
    for name, what in (("lead_time_days", "lead time"), ("unit_cost", "unit cost"), ("min_order_units", "min order")):
        v = pd.to_numeric(t[name], errors="coerce")
        neg = (v < 0).fillna(False).to_numpy()
        out.add(neg, name, [f"negative {what}: {x}" for x in _q(v, neg)])
        if name == "lead_time_days":
            long = (v > 365).fillna(False).to_numpy()
            out.add(long, name, [f"lead time over a year: {x} days" for x in _q(v, long)])


def _sales_rules(t: pd.DataFrame, out: _Collector, rules: CleaningRules) -> None:
    q = pd.to_numeric(t["quantity"], errors="coerce")
    neg = (q < 0).fillna(False).to_numpy()
    if rules.negative_sales == "drop":
        out.add(neg, "quantity", [f"negative quantity {v} (a return) dropped" for v in _q(q, neg)], Severity.WARNING,
                "negative_sales=drop")
        t["_drop"] = neg
    else:
        out.add(neg, "quantity", [f"negative quantity {v}" for v in _q(q, neg)], rule="negative_sales=reject")
    price = pd.to_numeric(t["price"], errors="coerce")
    bad = (price < 0).fillna(False).to_numpy()
    out.add(bad, "price", [f"negative price {v}" for v in _q(price, bad)])


def _delivery_rules(t: pd.DataFrame, out: _Collector) -> None:
    q = pd.to_numeric(t["quantity"], errors="coerce")
    neg = (q < 0).fillna(False).to_numpy()
    out.add(neg, "quantity", [f"negative delivery quantity {v}" for v in _q(q, neg)])
    st = t["status"].astype(str).str.strip().str.lower().replace("", "expected")
    bad = ~st.isin(DELIVERY_STATUSES).to_numpy()
    out.add(bad, "status", [f"unknown status {v} (use {', '.join(DELIVERY_STATUSES)})"
                            for v in _q(t["status"].astype(str), bad)])
    t["status"] = st


def _calendar_rules(t: pd.DataFrame, out: _Collector) -> None:
    kind = t["kind"].astype(str).str.strip().str.lower()
    bad = ~kind.isin(CALENDAR_KINDS).to_numpy() & (kind != "").to_numpy()
    out.add(bad, "kind", [f"unknown kind {v} (use {', '.join(CALENDAR_KINDS)})" for v in _q(t["kind"], bad)])
    t["kind"] = kind


def _dedupe(spec: TableSpec, kept: pd.DataFrame, rows: np.ndarray, out: _Collector,
            rules: CleaningRules) -> pd.DataFrame:
    """Apply the duplicates rule among rows that passed every check."""
    if kept.empty:
        return kept
    key = list(spec.key)
    cols = spec.names
    norm = kept[cols].astype(str)
    dup_key = norm.duplicated(key, keep=False).to_numpy()
    if not dup_key.any():
        return kept
    exact_later = norm.duplicated(cols, keep="first").to_numpy()
    first_row_of = {}
    for r, k in zip(rows[dup_key], map(tuple, norm[dup_key][cols].to_numpy()), strict=True):
        first_row_of.setdefault(k, r)
    full_keys = list(map(tuple, norm[cols].to_numpy()))
    mask_exact = exact_later
    out.add(_positions(mask_exact, out, rows), None,
            [f"exact duplicate of row {first_row_of[full_keys[i]]}; kept once"
             for i in np.flatnonzero(mask_exact)], Severity.WARNING, "duplicates=exact")
    remaining = ~mask_exact
    sub = norm[remaining]
    conflict = np.zeros(len(kept), dtype=bool)
    conflict[remaining] = sub.duplicated(key, keep=False).to_numpy()
    drop = mask_exact.copy()
    if conflict.any():
        key_txt = [", ".join(f"{k}={v}" for k, v in zip(key, kv, strict=True))
                   for kv in norm[key].to_numpy()]
        last_of: dict[str, int] = {}
        for i in np.flatnonzero(conflict):
            last_of[key_txt[i]] = int(rows[i])
        if rules.duplicates == "last":
            earlier = conflict & np.array([last_of.get(key_txt[i]) != rows[i] for i in range(len(kept))])
            out.add(_positions(earlier, out, rows), None,
                    [f"same key ({key_txt[i]}) as row {last_of[key_txt[i]]} with other values; the later row wins"
                     for i in np.flatnonzero(earlier)], Severity.WARNING, "duplicates=last")
            drop |= earlier
        else:
            out.add(_positions(conflict, out, rows), None,
                    [f"same key ({key_txt[i]}) as another row with other values" for i in np.flatnonzero(conflict)],
                    rule="duplicates=reject")
            drop |= conflict
    return kept[~drop]


def _positions(mask_kept: np.ndarray, out: _Collector, kept_rows: np.ndarray) -> np.ndarray:
    """A mask over the kept rows as a mask over all rows of the collector."""
    full = np.zeros(len(out.rows), dtype=bool)
    if mask_kept.any():
        full[np.searchsorted(out.rows, kept_rows[mask_kept])] = True
    return full
