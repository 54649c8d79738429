"""Inventory alerts and the per-store inventory alert stream in Redis.

An alert's id derives from what it is about: (store, SKU, kind, business day). Re-running the batch,
re-importing a snapshot or a restarted shelf camera re-creates the same ids, and the Lua script
below stores each id once (HSETNX), appends it to the store's stream once and indexes it by time,
atomically. So a condition raises at most one alert of a kind per SKU and store day.

Every alert is also created in the chain's shared alert store (loss prevention's: `sf:{S}:lp:alert:*`
and its stream), so operators see inventory alerts next to the others, with acknowledge / resolve
and the same delivery; that store's create script is idempotent by id too, and it is written for
every alert of an evaluation, not only the new ones, so a crash between the two writes heals on the
next run. `sf:{S}:inv:alerts` stays the inventory feed.

Example:
    >>> a = InventoryAlert.make("S1", "MILK", AlertKind.REORDER, date(2026, 3, 2), "order 24", quantity=24)
    >>> a.alert_id == InventoryAlert.make("S1", "MILK", AlertKind.REORDER, date(2026, 3, 2), "again").alert_id
    True
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from workloads.lp.alert_config import AlertConfig
from workloads.lp.models import Alert
from workloads.lp.processor import Effects
from workloads.lp.store import LpStore
from workloads.state import keys

_NS = uuid.UUID("0f6f8a52-6d0c-4a55-9c43-6a1d1c7e9b31")
STREAM_MAXLEN = 100_000


class AlertKind(StrEnum):
    REORDER = "REORDER"  #: order from the supplier: the position is below the order-up-to level
    STOCKOUT_48H = "STOCKOUT_48H"  #: stock is expected to run out within the stockout horizon
    REPLENISH_FROM_BACKROOM = "REPLENISH_FROM_BACKROOM"  #: shelf empty while the backroom holds stock
    SHELF_EMPTY_NO_STOCK = "SHELF_EMPTY_NO_STOCK"  #: shelf empty and nothing in the backroom either


SEVERITY: dict[AlertKind, str] = {
    AlertKind.REORDER: "INFO",
    AlertKind.STOCKOUT_48H: "WARNING",
    AlertKind.REPLENISH_FROM_BACKROOM: "WARNING",
    AlertKind.SHELF_EMPTY_NO_STOCK: "CRITICAL",
}


class InventoryAlert(BaseModel):
    alert_id: str = Field(description="uuid5 of (store, sku, kind, business day): one alert per kind and day.")
    store_id: str
    sku: str
    kind: AlertKind
    severity: Literal["INFO", "WARNING", "CRITICAL"]
    business_date: date = Field(description="The store-local day the alert is about.")
    created_at: datetime
    message: str = Field(description="What to do, in words.")
    quantity: int | None = Field(None, description="Units to order or to move to the shelf, when the kind has one.")
    details: dict[str, Any] = Field(default_factory=dict, description="The numbers behind the decision.")

    @classmethod
    def make(cls, store_id: str, sku: str, kind: AlertKind, business_date: date, message: str,
             quantity: int | None = None, details: dict[str, Any] | None = None,
             created_at: datetime | None = None) -> InventoryAlert:
        aid = str(uuid.uuid5(_NS, f"{store_id}|{sku}|{kind.value}|{business_date.isoformat()}"))
        return cls(alert_id=aid, store_id=store_id, sku=sku, kind=kind, severity=SEVERITY[kind],  # type: ignore[arg-type]
                   business_date=business_date, created_at=created_at or datetime.now(UTC), message=message,
                   quantity=quantity, details=details or {})

    def to_lp_fields(self) -> dict[str, Any]:
        """The alert in loss prevention's alert shape (`workloads.lp.models.Alert`), for the shared stream."""
        return {"alert_id": self.alert_id, "alert_type": f"INVENTORY_{self.kind.value}", "severity": self.severity,
                "rule_id": f"inventory.{self.kind.value.lower()}", "rule_name": self.message, "store_id": self.store_id,
                "visitor_id": "", "timestamp": self.created_at, "created_at": self.created_at,
                "details": {"sku": self.sku, "quantity": self.quantity, **self.details}}


# KEYS: 1 id -> json hash, 2 stream, 3 by-time zset. ARGV: 1 maxlen, then (id, json, ts_ms) per alert.
# Returns the ids that were new.
_PUBLISH = """
local added = {}
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'alert_id', ARGV[i], 'json', ARGV[i + 1])
    redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
    added[#added + 1] = ARGV[i]
  end
end
return added
"""


class InventoryAlertLog:
    """Publish (idempotently) and read a store's inventory alerts."""

    def __init__(self, client: redis.Redis, shared: bool = True) -> None:
        self.client, self.shared = client, shared
        self._publish = client.register_script(_PUBLISH)
        self._lp = LpStore(client)

    def publish(self, alerts: Iterable[InventoryAlert]) -> list[str]:
        """Store new alerts (here and in the shared alert store); returns the ids that were new here."""
        by_store: dict[str, list[InventoryAlert]] = {}
        for a in alerts:
            by_store.setdefault(a.store_id, []).append(a)
        new: list[str] = []
        for store_id, batch in by_store.items():
            args: list[Any] = [STREAM_MAXLEN]
            for a in batch:
                args += [a.alert_id, a.model_dump_json(), int(a.created_at.timestamp() * 1000)]
            ks = [keys.inventory_alert_by_id(store_id), keys.inventory_alerts_stream(store_id),
                  keys.inventory_alerts_by_time(store_id)]
            new += [x.decode() if isinstance(x, bytes) else x for x in self._publish(keys=ks, args=args)]
            if self.shared:
                pipe = self.client.pipeline(transaction=True)
                self._lp.queue_effects(pipe, store_id, Effects(alerts=[Alert.model_validate(a.to_lp_fields())
                                                                       for a in batch]), AlertConfig())
                pipe.execute()
        return new

    def recent(self, store_id: str, limit: int = 100, kinds: Sequence[AlertKind] | None = None,
               since: datetime | None = None) -> list[InventoryAlert]:
        """Newest first."""
        lo = int(since.timestamp() * 1000) if since else "-inf"
        want = set(kinds or [])
        out: list[InventoryAlert] = []
        offset = 0
        while len(out) < limit:
            ids = self.client.zrevrangebyscore(keys.inventory_alerts_by_time(store_id), "+inf", lo, start=offset,
                                               num=500)
            if not ids:
                break
            offset += len(ids)
            for raw in self.client.hmget(keys.inventory_alert_by_id(store_id), ids):
                if raw is None:
                    continue
                a = InventoryAlert.model_validate_json(raw)
                if not want or a.kind in want:
                    out.append(a)
                    if len(out) >= limit:
                        break
        return out

    def count(self, store_id: str) -> int:
        return int(self.client.hlen(keys.inventory_alert_by_id(store_id)))
