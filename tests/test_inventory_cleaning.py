"""Inventory imports: bad files are reported row by row, the cleaning rules do what they say, and the
lake (real Parquet + DuckDB) stores clean rows idempotently."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workloads.inventory.intake import ReadError, import_bytes, import_file
from workloads.inventory.lake import InventoryLake
from workloads.inventory.settings import CleaningRules
from workloads.inventory.tables import Dataset

STORES = {"S1": "UTC", "S2": "Europe/Paris"}
SALES_HEAD = "store_id,sku,date,quantity\n"
SNAP_HEAD = "store_id,sku,snapshot_at,on_hand,shelf_units,backroom_units\n"


def run(tmp_path: Path, dataset: Dataset, text: str, rules: CleaningRules | None = None, store_id: str | None = None,
        name: str = "in.csv"):
    f = tmp_path / name
    f.write_text(text)
    lake = InventoryLake(tmp_path / "lake")
    return lake, import_file(lake, f, dataset, rules, STORES, store_id)


def issues(report) -> list[tuple[int | None, str | None, str, str]]:
    return [(i.row, i.column, i.severity.value, i.reason) for i in report.issues]


@pytest.mark.parametrize(
    ("dataset", "text", "rules", "expected_issue", "accepted"),
    [
        (Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,4\nS1,B,2026-03-02,abc\n", None,
         (2, "quantity", "error", "not a number: 'abc'"), 1),
        (Dataset.SALES, SALES_HEAD + "S1,A,02/03/2026,4\nS1,B,2026-03-02,1\n", None,
         (1, "date", "error", "not an ISO date (YYYY-MM-DD): '02/03/2026'"), 1),
        (Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,-2\nS1,B,2026-03-02,1\n", None,
         (1, "quantity", "warning", "negative quantity -2.0 (a return) dropped"), 1),
        (Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,-2\nS1,B,2026-03-02,1\n", CleaningRules(negative_sales="reject"),
         (1, "quantity", "error", "negative quantity -2.0"), 1),
        (Dataset.SALES, SALES_HEAD + "S9,A,2026-03-02,2\nS1,B,2026-03-02,1\n", None,
         (1, "store_id", "error", "unknown store 'S9' (not in the fleet config)"), 1),
        (Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,2,extra\nS1,B,2026-03-02,1\n", None,
         (1, None, "error", "expected 4 fields like the header, found 5"), 1),
        (Dataset.SALES, SALES_HEAD + "S1,,2026-03-02,2\nS1,B,2026-03-02,1\n", None,
         (1, "sku", "error", "missing value"), 1),
        (Dataset.SALES, "store_id,sku,date,quantity,unit\nS1,A,2026-03-02,2,kg\nS1,B,2026-03-02,1,units\n", None,
         (1, "unit", "error", "unknown unit 'kg' (use units or cases)"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,10,4,5\n", None,
         (1, "on_hand", "warning", "on_hand 10 != shelf_units 4 + backroom_units 5: on_hand set to the sum"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,10,4,5\nS1,B,2026-03-02T08:00,1,1,0\n",
         CleaningRules(count_mismatch="reject"),
         (1, "on_hand", "error", "on_hand 10 != shelf_units 4 + backroom_units 5"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,-3,0,0\n", None,
         (1, "on_hand", "warning", "negative stock -3.0 stored as 0"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,-3,0,0\nS1,B,2026-03-02T08:00,1,1,0\n",
         CleaningRules(negative_stock="reject"), (1, "on_hand", "error", "negative stock -3.0"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,,4,\nS1,B,2026-03-02T08:00,1,1,0\n", None,
         (1, None, "error", "needs on_hand, or both shelf_units and backroom_units"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,3,5,\nS1,B,2026-03-02T08:00,1,1,0\n", None,
         (1, None, "error", "shelf or backroom count exceeds on_hand 3.0"), 1),
        (Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,2.5,1,1.5\nS1,B,2026-03-02T08:00,1,1,0\n", None,
         (1, "on_hand", "error", "not a whole number of units: '2.5'"), 1),
        (Dataset.DELIVERIES, "store_id,sku,delivery_id,expected_at,quantity,status\nS1,A,PO1,2026-03-03,5,lost\n"
         "S1,A,PO2,2026-03-03,5,expected\n", None,
         (1, "status", "error", "unknown status 'lost' (use expected, received, cancelled)"), 1),
        (Dataset.CALENDAR, "date,kind,name\n2026-12-25,holiday,Christmas\n2026-12-26,party,x\n", None,
         (2, "kind", "error", "unknown kind 'party' (use promo, holiday, closed)"), 1),
    ],
)
def test_bad_rows_are_reported_with_row_column_and_reason(tmp_path, dataset, text, rules, expected_issue, accepted):
    _, report = run(tmp_path, dataset, text, rules)
    assert expected_issue in issues(report)
    assert report.rows_accepted == accepted and report.stored.new == accepted
    assert all(i.file == "in.csv" for i in report.issues)


@pytest.mark.parametrize(
    ("rule", "expected_qty", "severity"),
    [("last", [7.0], "warning"), ("reject", [], "error")],
)
def test_conflicting_duplicates_follow_the_rule(tmp_path, rule, expected_qty, severity):
    text = SALES_HEAD + "S1,A,2026-03-02,4\nS1,A,2026-03-02,7\n"
    lake, report = run(tmp_path, Dataset.SALES, text, CleaningRules(duplicates=rule, max_rejected_share=1.0))
    assert {i.severity.value for i in report.issues} == {severity}
    assert lake.read("sales").column("quantity").to_pylist() == expected_qty
    if rule == "last":
        assert issues(report) == [(1, None, "warning",
                                   "same key (store_id=S1, sku=A, date=2026-03-02) as row 2 with other "
                                   "values; the later row wins")]


def test_exact_duplicates_are_kept_once(tmp_path):
    lake, report = run(tmp_path, Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,4\nS1,A,2026-03-02,4\n")
    assert issues(report) == [(2, None, "warning", "exact duplicate of row 1; kept once")]
    assert report.rows_dropped == 1 and lake.read("sales").num_rows == 1


@pytest.mark.parametrize(
    ("rule", "on_hand", "shelf", "backroom"),
    [("parts", 9, 4, 5), ("total", 10, 4, 6)],
)
def test_count_mismatch_rules(tmp_path, rule, on_hand, shelf, backroom):
    lake, _ = run(tmp_path, Dataset.SNAPSHOTS, SNAP_HEAD + "S1,A,2026-03-02T08:00,10,4,5\n",
                  CleaningRules(count_mismatch=rule))
    row = lake.read("snapshots").to_pylist()[0]
    assert (row["on_hand"], row["shelf_units"], row["backroom_units"]) == (on_hand, shelf, backroom)


def test_cases_become_units_and_missing_part_is_derived(tmp_path):
    text = ("store_id,sku,snapshot_at,on_hand,shelf_units,unit,pack_size\n"
            "S1,A,2026-03-02T08:00,3,1,cases,12\n")
    lake, report = run(tmp_path, Dataset.SNAPSHOTS, text)
    row = lake.read("snapshots").to_pylist()[0]
    assert (row["on_hand"], row["shelf_units"], row["backroom_units"], row["unit"]) == (36, 12, 24, "units")
    assert [i.rule for i in report.issues] == ["unit=cases"]


def test_naive_times_are_store_local_and_stored_in_utc(tmp_path):
    text = SNAP_HEAD + "S2,A,2026-07-01T10:00,1,1,0\nS1,A,2026-07-01T10:00+02:00,1,1,0\n"
    lake, report = run(tmp_path, Dataset.SNAPSHOTS, text)
    assert report.errors == 0
    got = sorted((r["store_id"], r["snapshot_at"]) for r in lake.read("snapshots").to_pylist())
    assert got == [("S1", datetime(2026, 7, 1, 8, 0)), ("S2", datetime(2026, 7, 1, 8, 0))]


def test_missing_required_column_aborts_and_names_it(tmp_path):
    lake, report = run(tmp_path, Dataset.SALES, "store_id,sku,quantity\nS1,A,3\n")
    assert report.aborted and "date" in report.aborted
    assert (None, "date", "error", "required column 'date' is missing (also accepted: day, sales_date, "
            "business_date)") in issues(report)
    assert lake.read("sales").num_rows == 0


def test_too_many_bad_rows_store_nothing(tmp_path):
    text = SALES_HEAD + "S1,A,x,1\nS1,B,y,1\nS1,C,2026-03-02,1\n"
    lake, report = run(tmp_path, Dataset.SALES, text)
    assert report.aborted and report.rows_rejected == 2 and lake.read("sales").num_rows == 0


def test_header_aliases_and_unknown_columns(tmp_path):
    lake, report = run(tmp_path, Dataset.SALES, "Store,SKU,Day,Qty,Colour\nS1,A,2026-03-02,4,red\n")
    assert issues(report) == [(None, "Colour", "warning", "unknown column 'Colour' ignored (a sales file has: "
                               "store_id, sku, date, quantity, promo, price, pack_size, unit)")]
    assert lake.read("sales").column("quantity").to_pylist() == [4.0]


def test_reimport_is_idempotent_and_corrections_replace(tmp_path):
    lake, first = run(tmp_path, Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,4\nS1,A,2026-03-03,5\n")
    _, again = run(tmp_path, Dataset.SALES, SALES_HEAD + "S1,A,2026-03-02,4\nS1,A,2026-03-03,5\n")
    _, fix = run(tmp_path, Dataset.SALES, SALES_HEAD + "S1,A,2026-03-03,6\nS1,A,2026-03-04,1\n")
    assert (first.stored.new, again.stored.unchanged, again.stored.new) == (2, 2, 0)
    assert (fix.stored.updated, fix.stored.new) == (1, 1)
    rows = lake.connect().sql("select date, quantity from sales order by date").fetchall()
    assert rows == [(date(2026, 3, 2), 4.0), (date(2026, 3, 3), 6.0), (date(2026, 3, 4), 1.0)]


def test_parquet_goes_through_the_same_checks(tmp_path):
    f = tmp_path / "sales.parquet"
    pq.write_table(pa.table({"store_id": ["S1", "S1"], "sku": ["A", "B"],
                             "date": [date(2026, 3, 2), date(2026, 3, 2)], "quantity": [3.0, -1.0]}), f)
    lake = InventoryLake(tmp_path / "lake")
    report = import_file(lake, f, Dataset.SALES, stores=STORES)
    assert issues(report) == [(2, "quantity", "warning", "negative quantity -1.0 (a return) dropped")]
    assert lake.read("sales").column("sku").to_pylist() == ["A"]


def test_upload_for_one_store_rejects_other_stores_rows(tmp_path):
    lake = InventoryLake(tmp_path / "lake")
    body = b'[{"sku": "A", "snapshot_at": "2026-03-02T08:00:00Z", "on_hand": 3}, ' \
           b'{"store_id": "S2", "sku": "B", "snapshot_at": "2026-03-02T08:00:00Z", "on_hand": 1}]'
    report = import_bytes(lake, body, "json", Dataset.SNAPSHOTS, "upload", stores=STORES, store_id="S1")
    assert (2, "store_id", "error", "store 'S2' does not match this upload's store 'S1'") in issues(report)
    assert lake.read("snapshots").column("store_id").to_pylist() == ["S1"]


def test_unreadable_files_raise_a_clear_error(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ReadError, match=r"x.parquet: not a readable Parquet file"):
        import_file(InventoryLake(tmp_path), bad, Dataset.SALES)
    with pytest.raises(ReadError, match="no such file"):
        import_file(InventoryLake(tmp_path), tmp_path / "nope.csv", Dataset.SALES)
