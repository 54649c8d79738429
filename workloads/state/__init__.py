"""The Redis state layer: the store event log, camera checkpoints and health, and their key layout.

Redis is the only source of truth; actors are caches over it. Every key is built in `keys`.
"""

from workloads.state import keys
from workloads.state.admin import forget_store
from workloads.state.checkpoints import CameraCheckpoint, CameraHealth, CheckpointStore
from workloads.state.event_log import AppendResult, EventLog, Order, StoreCounters

__all__ = [
    "AppendResult",
    "CameraCheckpoint",
    "CameraHealth",
    "CheckpointStore",
    "EventLog",
    "Order",
    "StoreCounters",
    "forget_store",
    "keys",
]
