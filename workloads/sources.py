"""Camera frame sources and the pump that paces them.

A `FramePump` thread reads a source, keeps every frame whose timestamp reaches the next
`1/target_fps` tick, and hands it to the consumer:

- live (`realtime=True`): paced to the wall clock; when the consumer (detector) falls behind, only
  the latest frame is kept and the replaced ones are counted as dropped (a camera never builds a
  backlog that makes its events minutes late);
- backfill (`realtime=False`): as fast as the consumer takes frames; nothing is dropped.

Failing sources (a stream that stops, a file that cannot be opened) are reopened with exponential
backoff. Frame indices grow monotonically across loops of a file, so a frame index identifies one
moment of the feed, which makes event ids derived from it unique and replayable.

Example:
    >>> pump = FramePump(SyntheticSource("empty"), target_fps=5, realtime=False, loop=False)
    >>> pump.start(); f = pump.get(timeout=5); pump.stop()
    >>> f.index
    0
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from workloads.synthetic.scenario import SCENES as _SCENE_RECIPES
from workloads.synthetic.scene import Scene, build_scene, parse_scene_uri
from workloads.synthetic.sprites import SpriteBankMissingError

SCENE_NAMES = tuple(sorted(_SCENE_RECIPES))

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    index: int  #: position in the feed, monotonic across loops of a file
    pts_s: float  #: seconds since the start of the feed
    image: npt.NDArray[np.uint8]  #: BGR
    read_at: float = field(default_factory=time.monotonic)


class FrameSource(Protocol):
    """What the pump needs from a source."""

    name: str

    def open(self) -> float:
        """Open (or reopen) the source; returns its native fps."""

    def read(self) -> npt.NDArray[np.uint8] | None:
        """Next frame, or None at end of file / on a broken stream."""

    def seek(self, index: int) -> bool:
        """Position so that the next read returns frame `index` (files only)."""

    def frame_count(self) -> int | None:
        """Frames in a file, None for live sources."""

    def close(self) -> None: ...


class SourceError(RuntimeError):
    """A source that cannot be read; the message names it and says why."""


class VideoSource:
    """A video file or an RTSP/HTTP stream read with OpenCV (FFmpeg backend)."""

    def __init__(self, uri: str) -> None:
        self.name = uri
        self.is_stream = "://" in uri
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> float:
        self.close()
        cap = cv2.VideoCapture(self.name)
        if not cap.isOpened():
            raise SourceError(f"cannot open video source {self.name!r}")
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps and fps > 0 else 25.0

    def read(self) -> npt.NDArray[np.uint8] | None:
        if self._cap is None:
            return None
        ok, img = self._cap.read()
        return img if ok else None

    def seek(self, index: int) -> bool:
        if self._cap is None or self.is_stream:
            return False
        return bool(self._cap.set(cv2.CAP_PROP_POS_FRAMES, index))

    def frame_count(self) -> int | None:
        if self._cap is None or self.is_stream:
            return None
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        return n if n > 0 else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticSource:
    """A generated feed (no camera needed).

    `empty` is a static shop floor with sensor noise (soak and health tests). Every other name is a
    synthetic store scene with people and ground truth (`workloads.synthetic`, e.g. `store?seed=3`):
    a finite clip at 10 fps, rendered frame by frame, so it loops and seeks like a file.
    """

    SCENES = ("empty", *SCENE_NAMES)

    def __init__(self, scene: str, size: tuple[int, int] = (640, 480), fps: float = 10.0, seed: int = 0) -> None:
        name = scene.partition("?")[0]
        if name not in self.SCENES:
            raise SourceError(f"unknown synthetic scene {name!r}; known: {', '.join(self.SCENES)}")
        self.name = f"synthetic:{scene}"
        self._scene_uri = scene
        self._scene: Scene | None = None
        self._pos = 0
        self._size, self._fps = size, fps
        self._rng = np.random.default_rng(seed)
        if name != "empty":
            try:
                parse_scene_uri(scene)
            except ValueError as e:
                raise SourceError(str(e)) from None
            return
        w, h = size
        base = np.full((h, w, 3), (90, 110, 120), np.uint8)
        for x in range(0, w, 80):  # shelves as dark bars, so frames are not flat
            cv2.rectangle(base, (x + 10, 40), (x + 40, h // 2), (40, 50, 60), -1)
        self._base = base

    @property
    def is_scene(self) -> bool:
        return not self._scene_uri.startswith("empty")

    def open(self) -> float:
        if self.is_scene and self._scene is None:
            name, seed = parse_scene_uri(self._scene_uri)
            try:
                self._scene = build_scene(name, seed)
            except SpriteBankMissingError as e:
                raise SourceError(str(e)) from None
            self._fps = self._scene.fps
        self._pos = 0
        return self._fps

    def read(self) -> npt.NDArray[np.uint8] | None:
        if self._scene is not None:
            if self._pos >= self._scene.n_frames:
                return None
            self._pos += 1
            return self._scene.render(self._pos - 1)
        noise = self._rng.integers(0, 6, self._base.shape, dtype=np.uint8)
        return cv2.add(self._base, noise)

    def seek(self, index: int) -> bool:
        self._pos = index
        return True

    def frame_count(self) -> int | None:
        return self._scene.n_frames if self._scene is not None else None

    def close(self) -> None:
        pass


def open_source(uri: str) -> FrameSource:
    """Source for a camera's `source` string (bundled names must be resolved before)."""
    if uri.startswith("synthetic:"):
        return SyntheticSource(uri.removeprefix("synthetic:"))
    return VideoSource(uri)


def sample_ordinal(index: int, ticks_per_frame: float) -> int | None:
    """Which `target_fps` tick frame `index` serves, or None when it falls between ticks.

    Frame i is the sample of tick k when it is the first frame at or after that tick. Stateless, so a
    camera resuming at any frame samples exactly the frames an uninterrupted run would have.
    """
    eps = 1e-9
    k = math.floor(index * ticks_per_frame + eps)
    if index == 0 or k > math.floor((index - 1) * ticks_per_frame + eps):
        return k  # tick k lies in ((i-1)/fps, i/fps]
    return None


class FramePump:
    """Reads a source on a thread, samples it to `target_fps`, and hands frames to one consumer."""

    def __init__(
        self,
        source: FrameSource,
        target_fps: float,
        realtime: bool = True,
        loop: bool = True,
        start_index: int = 0,
        max_frames: int | None = None,
        depth: int = 1,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.target_fps, self.realtime, self.loop = source, target_fps, realtime, loop
        self.start_index = start_index
        self.max_frames = max_frames
        self.frames_offered = 0
        self.backoff_s = backoff_s
        self._clock = clock
        self._cv = threading.Condition()
        # Realtime keeps only the newest frame; backfill buffers up to `depth` so the consumer can take
        # several frames per detector call.
        self._buf: deque[Frame] = deque()
        self.depth = 1 if realtime else max(1, depth)
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pump:{source.name}", daemon=True)
        self.frames_read = 0
        self.frames_dropped = 0
        self.reconnects = 0
        self.error: str | None = None
        self.native_fps: float | None = None

    # consumer side -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        self._thread.join(timeout=5)
        self.source.close()

    @property
    def finished(self) -> bool:
        """True once a non-looping file is exhausted and its last frame was taken."""
        with self._cv:
            return self._done and not self._buf

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest frame not yet taken (realtime: the newest); None on timeout or when the feed ended."""
        frames = self.get_many(1, timeout)
        return frames[0] if frames else None

    def get_many(self, max_n: int, timeout: float | None = None) -> list[Frame]:
        """Up to `max_n` buffered frames, in order, waiting only for the first; [] on timeout or end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._buf and not self._done and not self._stop.is_set():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return []
                self._cv.wait(remaining)
            out = [self._buf.popleft() for _ in range(min(max_n, len(self._buf)))]
            self._cv.notify_all()
            return out

    # producer side -------------------------------------------------------------------------
    def _offer(self, frame: Frame) -> None:
        with self._cv:
            if self.realtime:
                if self._buf:
                    self.frames_dropped += len(self._buf)  # latest-frame policy: unread frames are superseded
                    self._buf.clear()
                self._buf.append(frame)
                self._cv.notify_all()
                return
            while len(self._buf) >= self.depth and not self._stop.is_set():
                self._cv.wait(0.5)
            self._buf.append(frame)
            self._cv.notify_all()

    def _open_with_backoff(self) -> float | None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            try:
                return self.source.open()
            except SourceError as e:
                self.error = str(e)
                self.reconnects += 1
                log.warning("%s; retrying in %.1fs", e, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
        return None

    def _run(self) -> None:
        try:
            self._pump()
        except Exception as e:  # a dying pump must say why, not hang the consumer
            log.exception("frame pump for %s failed", self.source.name)
            self.error = f"{type(e).__name__}: {e}"
        finally:
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def _pump(self) -> None:
        fps = self._open_with_backoff()
        if fps is None:
            return
        self.native_fps = fps
        n = self.source.frame_count()
        index = self.start_index
        if n and index:
            if index >= n and not self.loop:
                return
            self.source.seek(index % n)
        ticks_per_frame = min(self.target_fps, fps) / fps
        t0 = self._clock() - index / fps
        while not self._stop.is_set():
            img = self.source.read()
            if img is None:
                if n is not None:  # end of file
                    if not self.loop:
                        return
                    self.source.seek(0)
                    continue
                self.error = f"stream {self.source.name} stopped delivering frames"
                self.reconnects += 1
                if self._open_with_backoff() is None:
                    return
                continue
            pts = index / fps
            index += 1
            self.frames_read += 1
            ordinal = sample_ordinal(index - 1, ticks_per_frame)
            if ordinal is None:
                continue  # between sampling ticks: not needed at target_fps
            if self.max_frames is not None and ordinal >= self.max_frames:
                return
            if self.realtime:
                delay = t0 + pts - self._clock()
                if delay > 0:
                    self._stop.wait(delay)
            self._offer(Frame(index - 1, pts, img))
