"""`storefleet bench`: every throughput figure of the spine, measured in one run on the same frames.

Ratios, not absolute times, are what we report: these machines are shared and noisy, but two
measurements taken minutes apart on the same frames move together.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from cluster.assets import vtest_path
from workloads.config import FleetConfig


def decode_frames(path: Path, n: int) -> list[Any]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def bench_bare_loop(path: Path, n_frames: int, input_size: int) -> dict[str, Any]:
    """The single-process loop a user would write: read a frame with OpenCV, run INT8, repeat."""
    import cv2

    from models.registry import ir_path
    from models.runtime import PoseDetector

    det = PoseDetector(ir_path("yolo11n-pose", "INT8"), input_size=input_size)
    cap = cv2.VideoCapture(str(path))
    ok, img = cap.read()
    det.detect([img])  # warm-up
    t0, n = time.perf_counter(), 0
    while n < n_frames:
        ok, img = cap.read()
        if not ok:
            break
        det.detect([img])
        n += 1
    cap.release()
    return {"frames": n, "fps": round(n / (time.perf_counter() - t0), 2)}


def bench_pipeline(n_frames: int, input_size: int, cameras: int = 1) -> dict[str, Any]:
    """Frames/s of the whole cluster path: decode, Serve detector, tracking, events, store actor, Redis.

    Cameras run in backfill mode (as fast as the detector allows, nothing dropped) over the first
    `n_frames` frames of vtest.avi at its native 10 fps; time runs from each camera's first processed
    frame to its last, so Ray start-up and model compilation are not counted.
    """
    import ray
    from ray import serve

    from cluster.fleet import init_ray, start_fleet
    from cluster.redis_server import EmbeddedRedis

    cfg = FleetConfig.model_validate({
        "name": "bench",
        "detector": {"input_size": input_size, "precision": "INT8", "max_batch_size": max(1, cameras)},
        "stores": [{"id": "BENCH", "cameras": [
            {"id": f"BENCH_CAM_{i}", "source": str(vtest_path()), "target_fps": 10, "loop": False,
             "realtime": False, "max_frames": n_frames,
             "tripwires": [{"id": "door", "points": [[560, 140], [560, 340]], "inside_point": [400, 240]}],
             "zones": [{"id": f"Z{i}", "type": "PRODUCT", "polygon": [[250, 190], [550, 190], [550, 330], [250, 330]]}]}
            for i in range(cameras)
        ]}],
    })
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp, EmbeddedRedis(Path(tmp)) as server:
        init_ray()
        try:
            fleet = start_fleet(cfg, server.url, http_port=18000)
            final = fleet.wait()
            fleet.stop()
        finally:
            serve.shutdown()
            ray.shutdown()
    frames = sum(s["frames_processed"] for s in final.values())
    start = min(s["first_frame_wall"] for s in final.values())
    end = max(s["last_frame_wall"] for s in final.values())
    events = sum(s["events_sent"] for s in final.values())
    return {"cameras": cameras, "frames": frames, "events": events,
            "fps": round((frames - cameras) / max(end - start, 1e-6), 2)}


def run_benchmarks(n_frames: int = 120, input_size: int = 640, console: Console | None = None) -> dict[str, Any]:
    from models.bench import bench_detectors

    say = console.print if console else print
    frames = decode_frames(vtest_path(), n_frames)
    say(f"Detector variants on {len(frames)} vtest.avi frames at {input_size} ...")
    det = bench_detectors(frames, input_size=input_size)
    say("Bare single-process loop: OpenCV decode + OpenVINO INT8 ...")
    bare = bench_bare_loop(vtest_path(), len(frames), input_size)
    say("Full cluster pipeline (1 camera, then 3 cameras sharing the batched detector) ...")
    t0 = time.monotonic()
    pipe1 = bench_pipeline(len(frames), input_size, cameras=1)
    pipe3 = bench_pipeline(len(frames), input_size, cameras=3)
    out = {
        "frames": len(frames),
        "input_size": input_size,
        "detector": det,
        "bare_decode_int8_loop": bare,
        "pipeline_1cam": pipe1,
        "pipeline_3cam": pipe3,
        "pipeline_wall_s": round(time.monotonic() - t0, 1),
    }
    int8 = _fps(det, "openvino_int8")
    fp32 = _fps(det, "openvino_fp32")
    torch_fps = _fps(det, "pytorch")
    out["ratios"] = {
        "int8_vs_pytorch": round(int8 / torch_fps, 2) if torch_fps else None,
        "int8_vs_fp32": round(int8 / fp32, 2) if fp32 else None,
        "pipeline_1cam_vs_bare_int8": round(pipe1["fps"] / int8, 3) if int8 else None,
        "pipeline_3cam_vs_bare_int8": round(pipe3["fps"] / int8, 3) if int8 else None,
        "pipeline_1cam_vs_bare_decode_int8_loop": round(pipe1["fps"] / bare["fps"], 3),
        "pipeline_3cam_vs_bare_decode_int8_loop": round(pipe3["fps"] / bare["fps"], 3),
    }
    return out


def _fps(det: dict[str, Any], key: str) -> float:
    v = det.get(key)
    if isinstance(v, dict):
        return float(v.get("fps", 0.0))
    return float(v or 0.0)
