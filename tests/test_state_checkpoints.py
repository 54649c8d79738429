"""Camera checkpoints and health against a real Redis."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
import redis

from workloads.state import CameraCheckpoint, CameraHealth, CheckpointStore, keys

WALL = datetime(2026, 3, 3, 14, 22, 10, 123456, tzinfo=UTC)


@pytest.fixture
def store(redis_client: redis.Redis) -> CheckpointStore:
    return CheckpointStore(redis_client)


@pytest.mark.parametrize(
    ("blob", "frame_index", "wall"),
    [
        (b"", 0, WALL),
        (b"tracker state", 120, WALL),
        (bytes(range(256)) * 4, 2**40, WALL),  # every byte value, a large frame index
        (b"\x00" * 1_000_000, 7, WALL),  # a large blob
        (b"x", 1, WALL.astimezone(timezone(timedelta(hours=-5)))),  # any zone, read back as UTC
    ],
)
def test_checkpoint_round_trip(store: CheckpointStore, blob: bytes, frame_index: int, wall: datetime) -> None:
    store.put_checkpoint("S1", "C1", CameraCheckpoint(blob, frame_index, wall))
    got = store.get_checkpoint("S1", "C1")
    assert got is not None
    assert (got.blob, got.frame_index) == (blob, frame_index)
    assert got.wall_time.tzinfo == UTC
    assert abs(got.wall_time - wall) < timedelta(microseconds=2)  # stored as float seconds


def test_checkpoint_is_replaced_whole_and_is_per_camera(
    store: CheckpointStore, redis_client: redis.Redis
) -> None:
    assert store.get_checkpoint("S1", "C1") is None
    store.put_checkpoint("S1", "C1", CameraCheckpoint(b"long old state" * 10, 1))
    store.put_checkpoint("S1", "C1", CameraCheckpoint(b"new", 2))
    store.put_checkpoint("S1", "C2", CameraCheckpoint(b"other camera", 9))
    store.put_checkpoint("S2", "C1", CameraCheckpoint(b"other store", 5))
    got = store.get_checkpoint("S1", "C1")
    assert got is not None and (got.blob, got.frame_index) == (b"new", 2)
    assert redis_client.type(keys.camera_checkpoint("S1", "C1")) == b"string"  # one value: one SET
    store.delete_checkpoint("S1", "C1")
    assert store.get_checkpoint("S1", "C1") is None
    assert store.get_checkpoint("S1", "C2") is not None


def test_checkpoint_wall_time_defaults_to_now() -> None:
    before = datetime.now(UTC)
    cp = CameraCheckpoint(b"", 0)
    assert before <= cp.wall_time <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "truncated"),
        (b"short", "truncated"),
        (b"XXXX" + b"\x01" + b"\x00" * 16, "not a camera checkpoint"),
    ],
)
def test_foreign_value_is_refused(
    store: CheckpointStore, redis_client: redis.Redis, raw: bytes, message: str
) -> None:
    redis_client.set(keys.camera_checkpoint("S1", "C1"), raw)
    with pytest.raises(ValueError, match=message):
        store.get_checkpoint("S1", "C1")


def test_decoding_client_is_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        CheckpointStore(redis.Redis.from_url(redis_url, decode_responses=True))


# ------------------------------------------------------------------------------------ health


@pytest.mark.parametrize(
    "health",
    [
        CameraHealth(),
        CameraHealth(
            state="running",
            last_frame_ts=WALL,
            fps=4.75,
            frames_read=1000,
            frames_processed=990,
            frames_dropped=10,
            reconnects=2,
            updated_at=WALL,
        ),
        CameraHealth(
            state="failed",
            error="ConnectionError: rtsp timeout",
            extra={"active_tracks": "3"},
            updated_at=WALL,
        ),
    ],
)
def test_health_round_trip(store: CheckpointStore, health: CameraHealth) -> None:
    store.put_health("S1", "C1", health)
    got = store.get_health("S1", "C1")
    assert got is not None
    if health.updated_at is None:
        assert got.updated_at is not None  # stamped on write
        got = dataclasses.replace(got, updated_at=None)
    assert got == health


def test_health_replaces_the_previous_report(store: CheckpointStore) -> None:
    store.put_health("S1", "C1", CameraHealth(state="failed", error="boom", extra={"a": "1"}))
    store.put_health("S1", "C1", CameraHealth(state="running"))
    got = store.get_health("S1", "C1")
    assert got is not None and (got.state, got.error, got.extra) == ("running", None, {})


def test_all_health_of_a_store(store: CheckpointStore) -> None:
    assert store.all_health("S1") == {}
    assert store.get_health("S1", "C1") is None
    for cam, fps in (("C2", 2.0), ("C1", 1.0), ("C:3", 3.0)):
        store.put_health("S1", cam, CameraHealth(state="running", fps=fps, updated_at=WALL))
    store.put_health("S2", "C9", CameraHealth(updated_at=WALL))
    got = store.all_health("S1")
    assert list(got) == ["C1", "C2", "C:3"]
    assert [h.fps for h in got.values()] == [1.0, 2.0, 3.0]


def test_health_from_a_status_mapping() -> None:
    status = {  # shaped like dataclasses.asdict(CameraStatus) of the camera runner
        "store_id": "S1",
        "camera_id": "C1",
        "state": "running",
        "frames_read": 10,
        "frames_processed": 9,
        "frames_dropped": 1,
        "reconnects": 0,
        "events_sent": 4,
        "fps": 4.5,
        "last_frame_ts": "2026-03-03T14:22:10.123456Z",
        "last_frame_wall": 1772547730.5,
        "error": None,
        "counts": {"ENTRY": 2},
        "active_tracks": 3,
        "restored_from": None,
    }
    h = CameraHealth.from_mapping(status)
    assert (h.state, h.frames_read, h.frames_processed, h.frames_dropped, h.fps) == ("running", 10, 9, 1, 4.5)
    assert h.last_frame_ts == WALL and h.error is None
    assert h.extra == {
        "store_id": "S1",
        "camera_id": "C1",
        "events_sent": "4",
        "last_frame_wall": "1772547730.5",
        "active_tracks": "3",
    }


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.put_checkpoint("S1", "C1", b"raw bytes"), "CameraCheckpoint"),
        (lambda s: s.put_health("S1", "C1", {"state": "running"}), "from_mapping"),
    ],
)
def test_wrong_argument_types_are_named(store: CheckpointStore, call: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        call(store)  # type: ignore[operator]
