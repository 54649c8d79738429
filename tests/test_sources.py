"""Frame sampling, pacing, latest-frame drops, resume and reconnect of the frame pump."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workloads.sources import FramePump, SourceError, SyntheticSource, open_source, sample_ordinal


class ScriptedSource:
    """A file-like source of `n` numbered frames (pixel value = frame index); can fail to open."""

    def __init__(
        self, n: int | None, fps: float = 10.0, open_failures: int = 0, break_after: int | None = None
    ):
        self.name, self.n, self.fps = "scripted", n, fps
        self.open_failures, self.break_after = open_failures, break_after
        self.pos = 0
        self.opens = 0

    def open(self) -> float:
        self.opens += 1
        if self.open_failures > 0:
            self.open_failures -= 1
            raise SourceError("scripted: not reachable")
        return self.fps

    def read(self):
        if self.break_after is not None and self.pos >= self.break_after:
            self.break_after = None  # breaks once, like a dropped stream
            return None
        if self.n is not None and self.pos >= self.n:
            return None
        img = np.full((4, 4, 3), self.pos % 256, np.uint8)
        self.pos += 1
        return img

    def seek(self, index: int) -> bool:
        self.pos = index
        return True

    def frame_count(self):
        return self.n

    def close(self) -> None:
        pass


def drain(pump: FramePump, timeout: float = 5.0) -> list[int]:
    pump.start()
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = pump.get(timeout=0.2)
        if f is not None:
            out.append(f.index)
        elif pump.finished:
            break
    pump.stop()
    return out


@pytest.mark.parametrize(
    ("ticks_per_frame", "expected"),
    [
        (1.0, [0, 1, 2, 3, 4, 5]),  # target fps == native: every frame
        (0.5, [0, 2, 4]),  # 10 fps -> 5 fps
        (0.4, [0, 3, 5]),  # 10 fps -> 4 fps: ticks at 0, 2.5, 5
        (0.3, [0, 4]),  # 10 fps -> 3 fps: ticks at 0, 3.33
    ],
)
def test_sampled_frames(ticks_per_frame: float, expected: list[int]) -> None:
    assert [i for i in range(6) if sample_ordinal(i, ticks_per_frame) is not None] == expected


@pytest.mark.parametrize(
    ("n", "target_fps", "max_frames", "expected"),
    [
        (10, 10, None, list(range(10))),
        (10, 5, None, [0, 2, 4, 6, 8]),
        (10, 5, 3, [0, 2, 4]),
        (10, 50, None, list(range(10))),  # target above native: native rate
    ],
)
def test_backfill_delivers_every_sample(n, target_fps, max_frames, expected) -> None:
    pump = FramePump(ScriptedSource(n), target_fps, realtime=False, loop=False, max_frames=max_frames)
    assert drain(pump) == expected
    assert pump.frames_dropped == 0


@pytest.mark.parametrize("resume_at", [1, 3, 4, 7])
def test_resume_samples_what_an_uninterrupted_run_would(resume_at: int) -> None:
    full = drain(FramePump(ScriptedSource(12), 4, realtime=False, loop=False))
    resumed = drain(FramePump(ScriptedSource(12), 4, realtime=False, loop=False, start_index=resume_at))
    assert resumed == [i for i in full if i >= resume_at]


def test_loop_keeps_indices_monotonic() -> None:
    pump = FramePump(ScriptedSource(4), 10, realtime=False, loop=True, max_frames=10)
    assert drain(pump) == list(range(10))


def test_realtime_keeps_latest_frame_and_counts_drops() -> None:
    pump = FramePump(ScriptedSource(40, fps=100), 100, realtime=True, loop=False)
    pump.start()
    time.sleep(0.6)  # the consumer is "busy": frames pile up in a one-frame slot
    f = pump.get(timeout=1)
    pump.stop()
    assert f is not None and f.index == 39  # the newest frame, not the oldest
    assert pump.frames_dropped == 39


def test_reconnects_with_backoff_after_open_failures() -> None:
    src = ScriptedSource(3, open_failures=2)
    pump = FramePump(src, 10, realtime=False, loop=False, backoff_s=(0.01, 0.05))
    assert drain(pump) == [0, 1, 2]
    assert pump.reconnects == 2 and src.opens == 3


def test_stream_that_stops_is_reopened() -> None:
    src = ScriptedSource(None, break_after=3)
    pump = FramePump(src, 10, realtime=False, loop=False, max_frames=6, backoff_s=(0.01, 0.05))
    assert len(drain(pump)) == 6
    assert pump.reconnects == 1


@pytest.mark.parametrize(("uri", "kind"), [("synthetic:empty", SyntheticSource), ("rtsp://cam/1", None)])
def test_open_source(uri: str, kind) -> None:
    src = open_source(uri)
    if kind:
        assert isinstance(src, kind)
    else:
        assert src.is_stream


def test_unknown_synthetic_scene_is_a_clear_error() -> None:
    with pytest.raises(SourceError, match=r"unknown synthetic scene 'mall'"):
        open_source("synthetic:mall")


def test_missing_file_fails_with_its_name() -> None:
    with pytest.raises(SourceError, match=r"/nope\.avi"):
        open_source("/nope.avi").open()


def test_backfill_buffers_up_to_depth_and_hands_out_chunks_in_order() -> None:
    pump = FramePump(ScriptedSource(10), 10, realtime=False, loop=False, depth=4)
    pump.start()
    time.sleep(0.3)  # the reader fills the buffer, then waits
    chunks = []
    while not pump.finished:
        chunk = pump.get_many(3, timeout=1)
        if chunk:
            chunks.append([f.index for f in chunk])
    pump.stop()
    assert chunks[0] == [0, 1, 2] and [i for c in chunks for i in c] == list(range(10))
    assert max(len(c) for c in chunks) <= 3 and pump.frames_dropped == 0
