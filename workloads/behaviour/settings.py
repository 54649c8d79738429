"""Behavioural-analysis settings: the `behaviour` field of the fleet config.

Kept free of imports from `workloads.config` (which imports this module). The field descriptions are
the reference docs (docs/configuration.md is generated from them).

Example:
    >>> cfg = BehaviourConfig()
    >>> cfg.evidence.crop_fps, cfg.vlm.frames, cfg.vlm.model is None
    (2.0, 4, True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PACKAGE_DIR = Path(__file__).parent
DEFAULT_PATTERNS_FILE = PACKAGE_DIR / "patterns.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class S3Config(_Strict):
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, SeaweedFS, Ceph); None means AWS S3 of `region`."
    )
    bucket: str = Field("behavioral-frames", description="Bucket holding visit frames and alert evidence.")
    prefix: str = Field("", description="Key prefix inside the bucket (e.g. the chain's name).")
    region: str = Field("us-east-1", description="S3 region.")
    access_key_env: str = Field("AWS_ACCESS_KEY_ID", description="Environment variable holding the access key.")
    secret_key_env: str = Field("AWS_SECRET_ACCESS_KEY", description="Environment variable holding the secret key.")


class EvidenceConfig(_Strict):
    backend: Literal["filesystem", "s3"] = Field(
        "filesystem",
        description="Where person crops are kept: a folder (one machine, or a volume every node mounts) or an "
        "S3-compatible object store (a cluster).",
    )
    root: str | None = Field(
        None,
        description="Folder of the filesystem backend (default: `$STOREFLEET_CACHE/evidence`, i.e. "
        "`~/.cache/storefleet/evidence`).",
    )
    s3: S3Config = Field(default_factory=S3Config, description="The S3 backend's bucket and credentials.")
    crop_fps: float = Field(
        2.0, gt=0, le=30, description="Person crops kept per second while a person is inside a HIGH_VALUE zone."
    )
    crop_margin: float = Field(
        0.15, ge=0, le=1, description="Margin added around the person box on each side, as a share of its size."
    )
    crop_max_side: int = Field(
        448, ge=64, le=2048, description="Crops are scaled down so that their longer side is at most this (pixels)."
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality of stored crops.")
    max_frames_per_visit: int = Field(
        600, ge=1, description="At most this many crops per visit (a person who stays longer keeps the first ones)."
    )
    visit_keep_s: float = Field(
        900.0,
        ge=0,
        description="A visit that ended without suspicion keeps its frames this long (so a checkout-bypass alert "
        "raised later can still copy them), then they are deleted.",
    )
    open_visit_max_s: float = Field(
        4 * 3600.0, gt=0, description="A visit still open after this long (its camera restarted fresh) is cleaned up."
    )
    evidence_retention_days: float = Field(
        30.0, gt=0, description="Alert evidence (and the frames of suspicious visits) is deleted after this many days."
    )

    def root_path(self) -> Path:
        if self.root:
            return Path(self.root).expanduser()
        base = os.environ.get("STOREFLEET_CACHE") or str(Path.home() / ".cache" / "storefleet")
        return Path(base) / "evidence"


class PrefilterConfig(_Strict):
    patterns_file: str | None = Field(
        None,
        description="Pose patterns YAML (default: the shipped `workloads/behaviour/patterns.yaml`): hand-to-waist, "
        "pocket and bag motions as keypoint angles and distances normalised by torso length.",
    )
    min_frames: int = Field(
        3, ge=1, description="A visit with fewer usable pose frames than this ends as `no_enough_data`."
    )

    def patterns_path(self) -> Path:
        return Path(self.patterns_file) if self.patterns_file else DEFAULT_PATTERNS_FILE


class VlmConfig(_Strict):
    model: str | None = Field(
        None,
        description="Folder (or hub id on machines that can download) of a Qwen2.5-VL-Instruct checkpoint, e.g. "
        "`/models/Qwen2.5-VL-7B-Instruct`. None: no VLM is deployed and visits whose pose matched end as "
        "`no_enough_data`.",
    )
    frames: int = Field(4, ge=1, le=16, description="K: the last K frames of the visit go to the model.")
    max_pixels: int = Field(
        256 * 28 * 28,
        ge=28 * 28,
        description="Each frame is resized to at most this many pixels (Qwen2.5-VL: one token per 28x28 pixels).",
    )
    min_pixels: int = Field(16 * 28 * 28, ge=28 * 28, description="Each frame is resized to at least this many pixels.")
    max_tokens: int = Field(
        256, ge=64, le=4096,
        description="Most tokens of one answer; at least `reason_max_chars` + 48, so the bounded answer always fits.",
    )
    reason_max_chars: int = Field(160, ge=16, le=2000, description="Longest `reason` the answer may have.")
    max_model_len: int = Field(4096, ge=512, description="vLLM context length (prompt with images plus answer).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("auto", description="Weights' dtype in vLLM.")
    max_num_seqs: int = Field(8, ge=1, le=256, description="Requests vLLM batches together (continuous batching).")
    max_queued: int = Field(
        32, ge=0, description="Requests waiting beyond `max_num_seqs` per replica; more are answered "
        "`no_enough_data` (overloaded) at once instead of queueing without bound."
    )
    timeout_s: float = Field(
        60.0, gt=0, description="An analysis that takes longer is aborted and answered `no_enough_data` (timeout)."
    )
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU nodes: share of GPU memory vLLM takes.")
    cpu_kv_cache_gb: float = Field(2.0, gt=0, description="CPU nodes: GiB of KV cache (`VLLM_CPU_KVCACHE_SPACE`).")
    enforce_eager: bool = Field(
        True, description="Skip graph capture/compilation: slower decoding, start-up in seconds instead of minutes."
    )
    prompt: str | None = Field(None, description="Replaces the shipped instruction text (see docs/behaviour.md).")

    @model_validator(mode="after")
    def _answer_fits(self) -> VlmConfig:
        if self.max_tokens < self.reason_max_chars + 48:
            raise ValueError(f"max_tokens ({self.max_tokens}) must be at least reason_max_chars + 48 "
                             f"({self.reason_max_chars + 48}): a cut answer is not valid JSON")
        return self


class BehaviourConfig(_Strict):
    enabled: bool = Field(
        True,
        description="Keep person crops in HIGH_VALUE zones and run one behavioural-analysis watcher per store that "
        "answers the loss-prevention escalations.",
    )
    analysis_interval_s: float = Field(
        2.0, gt=0, description="How often a watched visit's new frames are checked while the person is inside."
    )
    evidence: EvidenceConfig = Field(default_factory=EvidenceConfig, description="Person crops and alert evidence.")
    prefilter: PrefilterConfig = Field(default_factory=PrefilterConfig, description="The pose pre-filter.")
    vlm: VlmConfig = Field(default_factory=VlmConfig, description="The vision-language model on vLLM.")
