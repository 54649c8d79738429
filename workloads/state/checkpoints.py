"""Camera checkpoints and camera health in Redis.

A camera actor that restarts resumes from its checkpoint (an opaque blob of tracker state plus the
frame index), so the deterministic event ids it re-derives for replayed frames are dropped by the
event log as duplicates. The checkpoint is one packed value written with one SET, so a crash in the
middle of a write leaves the previous checkpoint or the new one, never a blob from one and a frame
index from the other.

Health is what operators and the fleet reconciler read: one hash per camera, plus a per-store set
of cameras so a store's cameras can be listed without SCAN.

Example:
    >>> store = CheckpointStore(redis.Redis.from_url(url))  # doctest: +SKIP
    >>> store.put_checkpoint("S1", "C1", CameraCheckpoint(b"tracker", frame_index=120))  # doctest: +SKIP
    >>> store.get_checkpoint("S1", "C1").frame_index  # doctest: +SKIP
    120
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import redis

from workloads.state import keys

__all__ = ["CameraCheckpoint", "CameraHealth", "CheckpointStore"]

# magic, format version, frame index, wall time (s since epoch); then the blob.
_HEADER = struct.Struct(">4sBqd")
_MAGIC = b"SFCK"
_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(ts: datetime, name: str) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return ts.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CameraCheckpoint:
    """Where a camera actor resumes: its own opaque state, the frame index and when it was taken."""

    blob: bytes
    frame_index: int
    wall_time: datetime = field(default_factory=_now)

    def pack(self) -> bytes:
        ts = _utc(self.wall_time, "wall_time").timestamp()
        return _HEADER.pack(_MAGIC, _VERSION, self.frame_index, ts) + bytes(self.blob)

    @classmethod
    def unpack(cls, raw: bytes) -> CameraCheckpoint:
        if len(raw) < _HEADER.size:
            raise ValueError("camera checkpoint is truncated")
        magic, version, frame_index, ts = _HEADER.unpack_from(raw)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError(f"not a camera checkpoint of format {_VERSION} (magic {magic!r}, v{version})")
        wall = datetime.fromtimestamp(ts, UTC)
        return cls(blob=raw[_HEADER.size:], frame_index=frame_index, wall_time=wall)


@dataclass(frozen=True, slots=True)
class CameraHealth:
    """A camera actor's latest self-report, stored as one flat hash.

    `extra` keeps any other scalar a reporter wants operators to see (active tracks, events sent,
    wall time of the last frame ...), as strings; nested values are not stored.
    """

    state: str = "unknown"  #: e.g. starting, running, reconnecting, finished, failed, stopped
    last_frame_ts: datetime | None = None  #: feed time of the last frame processed
    fps: float = 0.0  #: measured frames per second processed
    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  #: skipped by latest-frame backpressure
    reconnects: int = 0
    error: str | None = None  #: why the feed failed, when it did
    updated_at: datetime | None = None  #: set by `put_health` when None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> CameraHealth:
        """Build from any status mapping (e.g. `dataclasses.asdict(status)`): known fields are parsed
        (timestamps may be ISO strings), other scalars go to `extra`, None and nested values are dropped."""

        def ts(v: Any) -> datetime | None:
            if v is None or v == "" or isinstance(v, datetime):
                return v or None
            return datetime.fromisoformat(str(v).replace("Z", "+00:00"))

        known = {f.name for f in fields(cls)} - {"extra"}
        extra = {k: str(v) for k, v in d.items()
                 if k not in known and k != "extra" and isinstance(v, str | int | float | bool)}
        extra.update({str(k): str(v) for k, v in (d.get("extra") or {}).items()})
        return cls(
            state=str(d.get("state") or "unknown"),
            last_frame_ts=ts(d.get("last_frame_ts")),
            fps=float(d.get("fps") or 0.0),
            frames_read=int(d.get("frames_read") or 0),
            frames_processed=int(d.get("frames_processed") or 0),
            frames_dropped=int(d.get("frames_dropped") or 0),
            reconnects=int(d.get("reconnects") or 0),
            error=str(d["error"]) if d.get("error") is not None else None,
            updated_at=ts(d.get("updated_at")),
            extra=extra,
        )

    def to_hash(self) -> dict[str, str]:
        out = {f"x:{k}": v for k, v in self.extra.items()}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "extra" or v is None:
                continue
            out[f.name] = _utc(v, f.name).isoformat() if isinstance(v, datetime) else str(v)
        return out

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> CameraHealth:
        d = {_str(k): _str(v) for k, v in raw.items()}
        extra = {k[2:]: v for k, v in d.items() if k.startswith("x:")}
        def ts(name: str) -> datetime | None:
            return datetime.fromisoformat(d[name]) if d.get(name) else None

        return cls(
            state=d.get("state", "unknown"),
            last_frame_ts=ts("last_frame_ts"),
            fps=float(d.get("fps", 0.0)),
            frames_read=int(d.get("frames_read", 0)),
            frames_processed=int(d.get("frames_processed", 0)),
            frames_dropped=int(d.get("frames_dropped", 0)),
            reconnects=int(d.get("reconnects", 0)),
            error=d.get("error"),
            updated_at=ts("updated_at"),
            extra=extra,
        )


def _str(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


class CheckpointStore:
    """Camera checkpoints and health over one Redis client.

    Args:
        client: A `redis.Redis` created without `decode_responses` (checkpoints are binary).
    """

    def __init__(self, client: redis.Redis) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("CheckpointStore needs a Redis client without decode_responses (binary blobs)")
        self.client = client

    def put_checkpoint(self, store_id: str, camera_id: str, checkpoint: CameraCheckpoint) -> None:
        """Replace the camera's checkpoint atomically (one SET of one packed value)."""
        if not isinstance(checkpoint, CameraCheckpoint):
            raise TypeError("put_checkpoint takes a CameraCheckpoint(blob, frame_index), "
                            f"not {type(checkpoint).__name__}")
        self.client.set(keys.camera_checkpoint(store_id, camera_id), checkpoint.pack())

    def get_checkpoint(self, store_id: str, camera_id: str) -> CameraCheckpoint | None:
        raw: bytes | None = self.client.get(keys.camera_checkpoint(store_id, camera_id))  # type: ignore[assignment]
        return CameraCheckpoint.unpack(raw) if raw is not None else None

    def delete_checkpoint(self, store_id: str, camera_id: str) -> None:
        """Forget the checkpoint: the camera starts from scratch next time."""
        self.client.delete(keys.camera_checkpoint(store_id, camera_id))

    def put_health(self, store_id: str, camera_id: str, health: CameraHealth) -> None:
        """Replace the camera's health report and list the camera under its store, in one MULTI."""
        if not isinstance(health, CameraHealth):
            raise TypeError("put_health takes a CameraHealth (build one from a status dict with "
                            f"CameraHealth.from_mapping), not {type(health).__name__}")
        if health.updated_at is None:
            health = replace(health, updated_at=_now())
        key = keys.camera_health(store_id, camera_id)
        pipe = self.client.pipeline(transaction=True)  # same hash tag: also a valid MULTI on Cluster
        pipe.delete(key)  # a replaced report must not keep fields the new one leaves out
        mapping: dict[Any, str] = health.to_hash()
        pipe.hset(key, mapping=mapping)
        pipe.sadd(keys.cameras(store_id), camera_id)
        pipe.execute()

    def get_health(self, store_id: str, camera_id: str) -> CameraHealth | None:
        raw = self.client.hgetall(keys.camera_health(store_id, camera_id))
        return CameraHealth.from_hash(raw) if raw else None

    def all_health(self, store_id: str) -> dict[str, CameraHealth]:
        """Every reporting camera of the store, by camera id (one round trip after the listing)."""
        camera_ids = sorted(_str(c) for c in self.client.smembers(keys.cameras(store_id)))
        if not camera_ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for camera_id in camera_ids:
            pipe.hgetall(keys.camera_health(store_id, camera_id))
        replies = pipe.execute()
        return {c: CameraHealth.from_hash(raw) for c, raw in zip(camera_ids, replies, strict=True) if raw}
