"""The inventory question planner's language model on Ray Serve: vLLM `AsyncLLM` behind an OpenAI-compatible
`/v1/chat/completions` (the subset in `models.llm.ChatRequest`), at route prefix `/llm`.

Why an HTTP endpoint rather than a handle: `LlmPlanner` (workloads/, no Ray) talks the OpenAI protocol, so
the same config points it at this app, at a `vllm serve` on a GPU node, or at any other compatible server;
only `inventory.llm_planner.base_url` changes. The engine is set up like the behavioural-analysis VLM
(`deployments.behaviour`: CPU KV-cache size, torchvision hook, xgrammar structured outputs, eager mode).
Deployed only when the fleet sets `inventory.planner_model`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException
from ray import serve

from models.llm import ChatRequest, chat_completion, prepare_smollm2
from workloads.config import FleetConfig
from workloads.inventory.settings import PlannerModelConfig

log = logging.getLogger("storefleet.planner_llm")

APP_NAME = "planner_llm"
DEPLOYMENT = "PlannerModel"
ROUTE_PREFIX = "/llm"
DEFAULT_MAX_TOKENS = 256

api = FastAPI(title="StoreFleet planner model", description="OpenAI-compatible chat completions (a subset).")


def engine_kwargs(cfg: PlannerModelConfig, model: str) -> dict[str, Any]:
    """vLLM engine arguments (shared with the tests)."""
    return {
        "model": model,
        "served_model_name": cfg.served_name,
        "dtype": cfg.dtype,
        "max_model_len": cfg.max_model_len,
        "max_num_seqs": cfg.max_num_seqs,
        "enforce_eager": cfg.enforce_eager,
        # Compact JSON only: xgrammar otherwise lets a small model spend its token budget on whitespace
        # between fields (seen: SmolLM2 without the prompt ran out of 64 tokens mid-plan).
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
    }


@serve.deployment(name=DEPLOYMENT)
@serve.ingress(api)
class PlannerModel:
    """One vLLM engine; concurrent questions are batched by the engine (continuous batching)."""

    def __init__(self, fleet: dict[str, Any], redis_url: str | None = None) -> None:
        self.cfg = FleetConfig.model_validate(fleet).inventory.planner_model or PlannerModelConfig()
        from deployments.behaviour import prepare_vllm_env

        prepare_vllm_env(self.cfg)
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        t0 = time.perf_counter()
        model = self.cfg.model or str(prepare_smollm2())
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_kwargs(self.cfg, model)))
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        log.warning("vLLM engine for %s ready in %.1f s", model, time.perf_counter() - t0)

    @api.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.cfg.served_name, "object": "model", "owned_by": "storefleet",
                                            "max_model_len": self.cfg.max_model_len}]}

    @api.post("/v1/chat/completions")
    async def chat(self, req: ChatRequest) -> dict[str, Any]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        if req.model not in (None, self.cfg.served_name):
            raise HTTPException(404, f"model {req.model!r} is not served here (this serves {self.cfg.served_name!r})")
        try:
            schema = req.json_schema()
            prompt = self.tokenizer.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        except (ValueError, TypeError, KeyError) as e:
            raise HTTPException(400, str(e)) from None
        sampling = SamplingParams(
            temperature=req.temperature, max_tokens=req.max_tokens or DEFAULT_MAX_TOKENS,
            structured_outputs=StructuredOutputsParams(json=schema) if schema is not None else None,
        )
        final = None
        async for out in self.engine.generate(prompt, sampling, request_id=f"plan-{uuid.uuid4().hex}"):
            final = out
        if final is None:
            raise HTTPException(500, "the engine returned nothing")
        o = final.outputs[0]
        return chat_completion(self.cfg.served_name, o.text, o.finish_reason, len(final.prompt_token_ids or []),
                               len(o.token_ids))

    async def check_health(self) -> None:
        await self.engine.check_health()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()


def build_app(args: dict[str, Any]) -> Any:
    """Serve application builder (`ray_config.yaml`: `deployments.planner_llm:build_app`)."""
    return PlannerModel.bind(args["fleet"], args.get("redis_url"))
