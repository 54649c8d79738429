"""The rule actor's clock: per camera, in event time, so loitering and expiry work live and in backfill.

Why per camera and not the wall clock: a backfilled clip runs faster than real time, and two cameras
of one store can be minutes apart in feed time. A visit's dwell is measured on the clock of the
camera that reported it:
    * cameras that report health follow their feed time (`last_frame_ts`, advancing even when no event
      happens) minus `slack_s`, the most a ZONE_EXIT can trail the frames (exit grace + event batching);
    * other sources (HTTP ingest, SceneScape) are assumed live: the wall clock, while their latest event
      is recent (`live_window_s`); older than that, their clock stays at their latest event (history).
A camera's clock never goes below its latest event.

Example:
    >>> c = StoreClock(wall=lambda: 1000.0)
    >>> c.observe("C1", 990.0); c.now_for("C1")
    1000.0
    >>> c.observe("OLD", 10.0); c.now_for("OLD")
    10.0
"""

from __future__ import annotations

import time
from collections.abc import Callable


class StoreClock:
    def __init__(self, wall: Callable[[], float] = time.time, live_window_s: float = 600.0,
                 slack_s: float = 2.0) -> None:
        self.wall, self.live_window_s, self.slack_s = wall, live_window_s, slack_s
        self._events: dict[str, float] = {}
        self._feed: dict[str, float] = {}

    def observe(self, camera_id: str, ts: float) -> None:
        """An event of `camera_id` at event time `ts` (epoch seconds)."""
        if ts > self._events.get(camera_id, float("-inf")):
            self._events[camera_id] = ts

    def feed(self, camera_id: str, ts: float) -> None:
        """The camera's feed time (last processed frame), from its health report."""
        self._feed[camera_id] = ts

    def now_for(self, camera_id: str | None) -> float:
        latest = self._events.get(camera_id, float("-inf")) if camera_id else float("-inf")
        if camera_id in self._feed:
            return max(latest, self._feed[camera_id] - self.slack_s)
        wall = self.wall()
        if latest == float("-inf") or wall - latest <= self.live_window_s:
            return max(latest, wall)
        return latest
