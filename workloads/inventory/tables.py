"""The datasets the inventory lake holds: their columns, types, keys and accepted header spellings.

A `TableSpec` is what cleaning validates against and what the lake stores: every clean table has
exactly its columns, in its order, with its types. The key columns identify a row across imports,
so importing the same file twice changes nothing and a corrected row replaces the old one.

Example:
    >>> SALES.key
    ('store_id', 'sku', 'date')
    >>> canonical_column("Qty", SALES)
    'quantity'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import pyarrow as pa

Kind = Literal["str", "int", "float", "date", "timestamp", "bool"]

_ARROW: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),  # naive UTC
    "bool": pa.bool_(),
}


class Dataset(StrEnum):
    SNAPSHOTS = "snapshots"
    SALES = "sales"
    DELIVERIES = "deliveries"
    CALENDAR = "calendar"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    default: object = None  #: value when the column is absent or the cell empty (None: stays null)
    aliases: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    dataset: Dataset
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str = ""
    derived: tuple[str, ...] = field(default=())  #: filled by cleaning, never read from a file

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, _ARROW[c.kind]) for c in self.columns])


_UNIT = Column("unit", "str", default="units", aliases=("uom", "units_of_measure"),
               doc="`units` (each) or `cases`; case quantities are multiplied by pack_size.")
_PACK = Column("pack_size", "int", default=1, aliases=("case_size", "pack", "case_pack"),
               doc="Units per case / order pack.")

SNAPSHOTS = TableSpec(
    Dataset.SNAPSHOTS,
    (
        Column("store_id", "str", True, aliases=("store",), doc="Fleet store id."),
        Column("sku", "str", True, aliases=("sku_id", "item", "item_id", "product_id"), doc="Stock-keeping unit."),
        Column("snapshot_at", "timestamp", True, aliases=("snapshot_time", "counted_at", "timestamp", "date"),
               doc="When the stock was counted (a date means the start of that day, store time)."),
        Column("product_name", "str", default="", aliases=("name", "product", "description")),
        Column("category", "str", default="", aliases=("department", "dept")),
        Column("on_hand", "int", aliases=("onhand", "stock", "on_hand_units"), doc="Units in the store."),
        Column("backroom_units", "int", aliases=("backroom", "backroom_qty", "stockroom")),
        Column("shelf_units", "int", aliases=("shelf", "shelf_qty", "on_shelf")),
        Column("lead_time_days", "float", aliases=("lead_time", "leadtime"), doc="Order-to-shelf days."),
        Column("unit_cost", "float", aliases=("cost", "unit_price"), doc="Cost per unit (stock value)."),
        _PACK,
        Column("min_order_units", "int", default=0, aliases=("moq", "min_order")),
        _UNIT,
    ),
    key=("store_id", "sku", "snapshot_at"),
    doc="Stock counts per store and SKU at a point in time; the latest one is the current stock.",
)

SALES = TableSpec(
    Dataset.SALES,
    (
        Column("store_id", "str", True, aliases=("store",)),
        Column("sku", "str", True, aliases=("sku_id", "item", "item_id", "product_id", "stockcode")),
        Column("date", "date", True, aliases=("day", "sales_date", "business_date")),
        Column("quantity", "float", True, aliases=("qty", "units", "units_sold", "sold")),
        Column("promo", "bool", default=False, aliases=("on_promo", "promotion")),
        Column("price", "float", aliases=("unit_price", "sell_price")),
        _PACK,
        _UNIT,
    ),
    key=("store_id", "sku", "date"),
    doc="Units sold per store, SKU and day (POS export); `promo` marks days the SKU was on promotion.",
)

DELIVERIES = TableSpec(
    Dataset.DELIVERIES,
    (
        Column("store_id", "str", True, aliases=("store",)),
        Column("sku", "str", True, aliases=("sku_id", "item", "item_id", "product_id")),
        Column("delivery_id", "str", True, aliases=("po", "po_number", "order_id", "shipment_id")),
        Column("expected_at", "timestamp", True, aliases=("eta", "expected", "delivery_date", "due")),
        Column("quantity", "int", True, aliases=("qty", "units")),
        Column("status", "str", default="expected", doc="`expected`, `received` or `cancelled`."),
        _PACK,
        _UNIT,
    ),
    key=("store_id", "delivery_id", "sku"),
    doc="Inbound deliveries; `expected` ones count as stock on order.",
)

CALENDAR = TableSpec(
    Dataset.CALENDAR,
    (
        Column("store_id", "str", default="*", aliases=("store",), doc="A store, or `*` / empty for every store."),
        Column("sku", "str", default="*", aliases=("sku_id", "item"), doc="A SKU, or `*` / empty for every SKU."),
        Column("date", "date", True, aliases=("day",)),
        Column("kind", "str", True, aliases=("type", "event"), doc="`promo`, `holiday` or `closed`."),
        Column("name", "str", default=""),
    ),
    key=("store_id", "sku", "date", "kind"),
    doc="Known promotions, holidays and closing days, past and future (forecast inputs).",
)

SPECS: dict[Dataset, TableSpec] = {s.dataset: s for s in (SNAPSHOTS, SALES, DELIVERIES, CALENDAR)}

DELIVERY_STATUSES = ("expected", "received", "cancelled")
CALENDAR_KINDS = ("promo", "holiday", "closed")
UNITS = {"units": 1, "unit": 1, "each": 1, "ea": 1, "pcs": 1, "pc": 1,
         "cases": 0, "case": 0, "cs": 0, "packs": 0, "pack": 0}  #: 0 = multiply by pack_size


def normalise_header(name: str) -> str:
    """`On Hand (units)` -> `on_hand_units`: lower case, runs of non-alphanumerics to one underscore."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def canonical_column(header: str, spec: TableSpec) -> str | None:
    """The spec column a file header means, or None for a column the dataset does not have."""
    h = normalise_header(header)
    for c in spec.columns:
        if h == c.name or h in c.aliases:
            return c.name
    return None
