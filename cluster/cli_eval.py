"""`storefleet eval`: measured accuracy on synthetic store clips with known truth and on MOT ground truth.

Commands:
    * `storefleet eval run`: the accuracy table: the standard seeded scene set through the camera
      pipeline (detector + engine), pooled against the truth, plus our tracker on TUD-Campus and
      TUD-Stadtmitte next to the reference tracker shipped with motmetrics. Exit status 1 when a
      promised target is missed (so CI can hold the line), 0 otherwise.
    * `storefleet eval tracking`: only the TUD part (seconds).
    * `storefleet eval detector`: person recall / precision per input size and with tiling.
    * `storefleet eval scene NAME`: write one clip (video, truth.json, POS transactions.csv, fleet.yaml).
    * `storefleet eval prepare`: cut the person sprites out of vtest.avi (once; `run` does it too).

Detector outputs are cached per (scene, seed, model, precision, input size) under
`<cache>/eval/detections`, so re-running after a tracker or rule change takes the engine time only;
`--fresh` ignores the cache.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)
eval_app = typer.Typer(
    help="Measured accuracy: synthetic scenes with known truth, tracking on MOT ground truth, detector recall.",
    no_args_is_help=True,
)

#: The fixed, seeded scene set behind docs/accuracy.md.
STANDARD_SCENES: tuple[str, ...] = (
    "singles?seed=1",
    "groups?seed=1",
    "staff?seed=1",
    "reentry?seed=1",
    "queue?seed=1",
    "occlusion?seed=1",
    "store?seed=1",
    "store?seed=2",
)


def ensure_sprite_bank(progress: bool = True) -> Path:
    """Build the person sprite bank from vtest.avi with our FP32 detector, once; returns its path."""
    from workloads.synthetic.sprites import EXTRACT_INPUT_SIZE, bank_path, build_sprite_bank

    path = bank_path()
    if path.is_file():
        return path
    from cluster.assets import vtest_path
    from cluster.cli import prepare_assets
    from models.registry import ir_path
    from models.runtime import PoseDetector
    from workloads.config import FleetConfig

    prepare_assets(
        FleetConfig.model_validate({"stores": [{"id": "S", "cameras": [{"id": "C", "source": "bundled:vtest.avi"}]}]}),
        progress=progress,
    )
    if progress:
        console.print("Cutting person sprites out of vtest.avi (once, ~1 min) ...")
    det = PoseDetector(ir_path("yolo11n-pose", "FP32"), input_size=EXTRACT_INPUT_SIZE, conf_threshold=0.25)

    def boxes(frames: Any) -> list[Any]:
        return [np.c_[d.boxes, d.scores].astype(np.float32) for d in det.detect(list(frames))]

    bank = build_sprite_bank(vtest_path(), boxes)
    if not bank.identities:
        raise RuntimeError("no usable person cut-outs found in vtest.avi")
    bank.save(path)
    if progress:
        console.print(f"  {len(bank.identities)} pedestrians, {sum(map(len, bank.identities))} cut-outs -> {path}")
    return path


def _detector(precision: str, input_size: int, model: str = "yolo11n-pose") -> Any:
    from models.registry import ir_path
    from models.runtime import PoseDetector
    from workloads.config import DetectorConfig

    cfg = DetectorConfig()
    xml = ir_path(model, precision)
    if not xml.is_file():
        from cluster.cli import prepare_assets
        from workloads.config import FleetConfig

        prepare_assets(FleetConfig.model_validate(
            {"stores": [{"id": "S", "cameras": [{"id": "C", "source": "bundled:vtest.avi"}]}]}))
    return PoseDetector(xml, input_size=input_size, conf_threshold=cfg.conf_threshold,
                        iou_threshold=cfg.iou_threshold)


def _det_cache_path(scene: Any, precision: str, input_size: int) -> Path:
    from cluster.assets import cache_dir

    safe = f"{scene.name}-{scene.seed}-{scene.fingerprint}"
    return cache_dir() / "eval" / "detections" / f"{safe}-yolo11n-pose-{precision}-{input_size}.npz"


def _load_dets(path: Path) -> dict[int, tuple[Any, Any]]:
    if not path.is_file():
        return {}
    with np.load(path) as z:
        frames = z["frames"].tolist()
        counts = z["counts"].tolist()
        boxes, scores = z["boxes"], z["scores"]
    out, k = {}, 0
    for f, n in zip(frames, counts, strict=True):
        out[int(f)] = (boxes[k : k + n].astype(np.float32), scores[k : k + n].astype(np.float32))
        k += n
    return out


def _save_dets(path: Path, dets: dict[int, tuple[Any, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = sorted(dets)
    np.savez_compressed(
        path,
        frames=np.array(frames, np.int64),
        counts=np.array([len(dets[f][1]) for f in frames], np.int64),
        boxes=np.concatenate([np.asarray(dets[f][0]).reshape(-1, 4) for f in frames]) if frames else np.zeros((0, 4)),
        scores=np.concatenate([np.asarray(dets[f][1]).reshape(-1) for f in frames]) if frames else np.zeros(0),
    )


def evaluate_scenes(
    scenes: list[str], precision: str, input_size: int, fresh: bool = False, progress: bool = True
) -> list[Any]:
    """Run the pipeline on each scene and score it; returns SceneMetrics in order."""
    from workloads.evaluation.pipeline import run_scene
    from workloads.evaluation.scene_metrics import evaluate_run
    from workloads.synthetic.scene import EPOCH, build_scene, parse_scene_uri

    ensure_sprite_bank(progress)
    det = None
    out = []
    for uri in scenes:
        name, seed = parse_scene_uri(uri)
        scene = build_scene(name, seed)
        cache = _det_cache_path(scene, precision, input_size)
        dets = {} if fresh else _load_dets(cache)
        n_cached = len(dets)
        if det is None and n_cached < scene.n_frames // 2:
            det = _detector(precision, input_size)

        def detect(frames: Any, _det: Any = det) -> list[Any]:
            return [(d.boxes, d.scores) for d in _det.detect(frames)]

        t0 = time.perf_counter()
        fleet = scene.fleet_config(input_size=input_size)
        run = run_scene(scene, detect, fleet, detections=dets)
        if len(dets) > n_cached:
            _save_dets(cache, dets)
        m = evaluate_run(scene.truth, run, scene.layout.camera, EPOCH, scene=f"{name}:{seed}")
        out.append(m)
        if progress:
            console.print(
                f"  {name}:{seed}: {run.frames} frames in {time.perf_counter() - t0:.0f} s "
                f"(detector {run.detect_s:.0f} s{', cached' if n_cached else ''}); "
                f"entries {m.entries[0]}/{m.entries[1]}, "
                f"unique {m.unique_visitors[0]}/{m.unique_visitors[1]}"
            )
    return out


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    t = Table(title=title)
    for h in header:
        t.add_column(h)
    for r in rows:
        t.add_row(*r)
    out = Console()
    Console(width=max(out.width, 160) if not out.is_terminal else None).print(t)


ScenesOpt = Annotated[
    str | None, typer.Option(help="Comma-separated scenes like 'store?seed=3' (default: the standard set).")
]
SizeOpt = Annotated[int, typer.Option(help="Detector input size.")]
PrecisionOpt = Annotated[str, typer.Option(help="Detector precision: INT8 or FP32.")]


@eval_app.command("run")
def run_cmd(
    scenes: ScenesOpt = None,
    input_size: SizeOpt = 960,
    precision: PrecisionOpt = "INT8",
    fresh: Annotated[bool, typer.Option("--fresh", help="Re-run the detector even if cached.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every number as JSON here.")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="Also write the tables as Markdown.")] = None,
) -> None:
    """The accuracy table: seeded synthetic scenes through the pipeline, and tracking on TUD (motmetrics)."""
    from workloads.evaluation import report
    from workloads.evaluation.mot import evaluate_tud

    uris = [s.strip() for s in scenes.split(",")] if scenes else list(STANDARD_SCENES)
    console.print(f"Scenes: {', '.join(uris)} (detector {precision} at {input_size})")
    metrics = evaluate_scenes(uris, precision.upper(), input_size, fresh)
    summary = report.summarize(metrics)
    console.print("Tracking on TUD-Campus / TUD-Stadtmitte (reference tracker boxes, ids dropped) ...")
    mot = evaluate_tud()
    targets = report.check_targets(summary, mot)
    _print_table("Per scene (measured/true)", report.SCENE_HEADER, report.scene_table(metrics))
    _print_table(f"Accuracy over {len(metrics)} scenes", ["metric", "value", "detail"], report.summary_rows(summary))
    _print_table("Tracking on MOT ground truth (motmetrics)", report.MOT_HEADER, report.mot_rows(mot))
    _print_table("Targets", ["target", "met", "measured"], [[t, "yes" if ok else "NO", v] for t, ok, v in targets])
    if json_out:
        json_out.write_text(json.dumps({
            "detector": {"precision": precision.upper(), "input_size": input_size},
            "scenes": [m.to_json() for m in metrics],
            "summary": summary,
            "tud": [asdict(r) for r in mot],
            "targets": [{"target": t, "met": ok, "measured": v} for t, ok, v in targets],
        }, indent=2, default=float) + "\n")
    if markdown_out:
        markdown_out.write_text("\n\n".join([
            report.markdown(["metric", "value", "detail"], report.summary_rows(summary)),
            report.markdown(report.SCENE_HEADER, report.scene_table(metrics)),
            report.markdown(report.MOT_HEADER, report.mot_rows(mot)),
        ]) + "\n")
    if not all(ok for _, ok, _ in targets):
        raise typer.Exit(1)


@eval_app.command("tracking")
def tracking_cmd() -> None:
    """Our tracker vs the reference tracker on TUD-Campus and TUD-Stadtmitte (motmetrics ground truth)."""
    from workloads.evaluation import report
    from workloads.evaluation.mot import evaluate_tud

    _print_table("Tracking on MOT ground truth (motmetrics)", report.MOT_HEADER, report.mot_rows(evaluate_tud()))


@eval_app.command("prepare")
def prepare_cmd() -> None:
    """Cut the person sprites for synthetic scenes out of vtest.avi (cached; runs once)."""
    console.print(f"sprite bank: {ensure_sprite_bank()}")


@eval_app.command("scene")
def scene_cmd(
    name: Annotated[str, typer.Argument(help="Scene recipe, e.g. store, queue, reentry (or 'store?seed=3').")],
    out: Annotated[Path, typer.Option(help="Folder to write the clip and its truth into.")],
    seed: Annotated[int | None, typer.Option(help="Seed (overrides ?seed= in the name).")] = None,
    video: Annotated[bool, typer.Option(help="Also render the clip to scene.avi.")] = True,
) -> None:
    """Write one synthetic clip: scene.avi, truth.json (boxes, events), transactions.csv (POS), fleet.yaml."""
    from workloads.synthetic.scene import build_scene, parse_scene_uri, write_transactions, write_video

    ensure_sprite_bank()
    scene_name, uri_seed = parse_scene_uri(name)
    scene = build_scene(scene_name, uri_seed if seed is None else seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth.json").write_text(json.dumps(scene.truth.to_json()) + "\n")
    write_transactions(scene, out / "transactions.csv")
    fleet = scene.fleet_config().model_dump(mode="json", exclude_defaults=True)
    (out / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False))
    if video:
        write_video(scene, out / "scene.avi")
    summary = scene.truth.to_json()["summary"]
    console.print(f"{scene.uri}: {scene.n_frames} frames at {scene.fps:g} fps -> {out}")
    print(json.dumps(summary, indent=2))


def _vtest_frames(n: int) -> list[Any]:
    import cv2

    from cluster.assets import vtest_path

    cap = cv2.VideoCapture(str(vtest_path()))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    want = set(np.linspace(0, total - 1, n).round().astype(int).tolist())
    frames = []
    for i in range(total):
        ok, img = cap.read()
        if not ok:
            break
        if i in want:
            frames.append(img)
    cap.release()
    return frames


def detector_table(
    sizes: list[int], tiling: bool, precision: str, frames_per_scene: int, vtest_frames: int, progress: bool = True
) -> list[dict[str, Any]]:
    """Recall / precision / F1 and ms per frame of each detector setting, on synthetic scenes and vtest.avi."""
    from workloads.evaluation.detection import reference_labels, score_frames, tiled
    from workloads.synthetic.scene import build_scene, parse_scene_uri

    ensure_sprite_bank(progress)
    syn_frames, syn_truth = [], []
    for uri in STANDARD_SCENES:
        scene = build_scene(*parse_scene_uri(uri))
        for f in np.linspace(50, scene.n_frames - 1, frames_per_scene).round().astype(int).tolist():
            syn_frames.append(scene.render(f))
            syn_truth.append((scene.truth.boxes[f], scene.truth.visibility[f]))
    vt = _vtest_frames(vtest_frames)

    def wrap(det: Any) -> Any:
        return lambda frames: [(d.boxes, d.scores) for d in det.detect(list(frames))]

    if progress:
        console.print(f"Reference labels for {len(vt)} vtest.avi frames: FP32 at 1280 plus 2x2 tiles at 640 ...")
    reference = [wrap(_detector("FP32", 1280)), tiled(wrap(_detector("FP32", 640)), (2, 2), 0.2, full_frame=False)]
    vt_truth = []
    for k in range(0, len(vt), 4):
        vt_truth += reference_labels(vt[k : k + 4], reference)
    configs: list[tuple[str, Any]] = [(f"{precision} {s}", wrap(_detector(precision, s))) for s in sizes]
    if tiling:
        configs.append((f"{precision} 640, 2x2 tiles + full frame", tiled(wrap(_detector(precision, 640)))))
    rows = []
    for name, detect in configs:
        syn = score_frames(name, syn_frames, syn_truth, detect)
        real = score_frames(name, vt, vt_truth, detect)
        row = {
            "setting": name,
            "synthetic_recall": syn.recall, "synthetic_precision": syn.precision, "synthetic_f1": syn.f1,
            "vtest_recall": real.recall, "vtest_precision": real.precision, "vtest_f1": real.f1,
            "ms_per_frame": (syn.seconds + real.seconds) * 1000 / (syn.frames + real.frames),
            "synthetic_people": syn.tp + syn.fn, "vtest_people": real.tp + real.fn,
        }
        rows.append(row)
        if progress:
            console.print(f"  {name}: synthetic R {syn.recall:.3f} P {syn.precision:.3f}; "
                          f"vtest R {real.recall:.3f} P {real.precision:.3f}; {row['ms_per_frame']:.0f} ms/frame")
    return rows


@eval_app.command("detector")
def detector_cmd(
    sizes: Annotated[str, typer.Option(help="Comma-separated input sizes.")] = "640,960,1280",
    tiling: Annotated[bool, typer.Option(help="Also 2x2 tiles (+ full frame) at 640.")] = True,
    precision: PrecisionOpt = "INT8",
    frames_per_scene: Annotated[int, typer.Option(help="Frames sampled per standard scene.")] = 25,
    vtest_frames: Annotated[int, typer.Option(help="vtest.avi frames sampled over the clip.")] = 40,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the rows as JSON here.")] = None,
) -> None:
    """Person recall / precision per input size and with tiling, on synthetic scenes (exact truth) and
    vtest.avi (against a reference labelling: FP32 at 1280 plus tiles, boxes scored >= 0.5)."""
    rows = detector_table([int(s) for s in sizes.split(",")], tiling, precision.upper(), frames_per_scene,
                          vtest_frames)
    header = ["setting", "synthetic R", "synthetic P", "synthetic F1", "vtest R", "vtest P", "ms/frame"]
    _print_table("Person detection", header, [
        [r["setting"], f"{r['synthetic_recall']:.3f}", f"{r['synthetic_precision']:.3f}", f"{r['synthetic_f1']:.3f}",
         f"{r['vtest_recall']:.3f}", f"{r['vtest_precision']:.3f}", f"{r['ms_per_frame']:.0f}"]
        for r in rows
    ])
    if json_out:
        json_out.write_text(json.dumps(rows, indent=2) + "\n")
