"""Pooling per-scene metrics into the accuracy table, with the targets the product promises.

Pooling sums counts over scenes before dividing, so a scene with many visitors weighs more than a
quiet one, and errors of opposite sign in two scenes do not cancel: count errors are
sum |measured - true| / sum true.

Example:
    >>> from workloads.evaluation.scene_metrics import SceneMetrics
    >>> s = summarize([SceneMetrics("a", entries=(9, 10), exits=(10, 10), unique_visitors=(8, 8))])
    >>> s["entry_count_error"], s["exit_count_error"]
    (0.1, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from workloads.evaluation.mot import MotResult
from workloads.evaluation.scene_metrics import SceneMetrics

#: (metric key, comparison, bound, label) — what docs/accuracy.md promises.
TARGETS: tuple[tuple[str, str, float, str], ...] = (
    ("entry_count_error", "<=", 0.05, "entry count within 5 %"),
    ("exit_count_error", "<=", 0.05, "exit count within 5 %"),
    ("unique_visitor_error", "<=", 0.10, "unique visitors within 10 %"),
    ("staff_precision", ">=", 0.90, "staff exclusion precision >= 0.9"),
    ("staff_recall", ">=", 0.90, "staff exclusion recall >= 0.9"),
)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def summarize(scenes: Sequence[SceneMetrics]) -> dict[str, float]:
    """Pooled metrics over a scene set."""

    def count_error(name: str) -> float:
        err = sum(abs(getattr(m, name)[0] - getattr(m, name)[1]) for m in scenes)
        return _ratio(err, sum(getattr(m, name)[1] for m in scenes))

    conv = [abs(m.conversion[0] - m.conversion[1]) for m in scenes if m.unique_visitors[1]]
    mota = [m.mota for m in scenes if not math.isnan(m.mota)]
    idf1 = [m.idf1 for m in scenes if not math.isnan(m.idf1)]
    return {
        "scenes": len(scenes),
        "entries_true": sum(m.entries[1] for m in scenes),
        "entries_measured": sum(m.entries[0] for m in scenes),
        "entry_count_error": count_error("entries"),
        "exits_true": sum(m.exits[1] for m in scenes),
        "exits_measured": sum(m.exits[0] for m in scenes),
        "exit_count_error": count_error("exits"),
        "unique_visitors_true": sum(m.unique_visitors[1] for m in scenes),
        "unique_visitors_measured": sum(m.unique_visitors[0] for m in scenes),
        "unique_visitor_error": count_error("unique_visitors"),
        "reentry_precision": _ratio(sum(m.reentry_tp for m in scenes), sum(m.reentry_pred for m in scenes)),
        "reentry_recall": _ratio(sum(m.reentry_found for m in scenes), sum(m.reentry_true for m in scenes)),
        "reentries_true": sum(m.reentry_true for m in scenes),
        "zone_visit_recall": _ratio(sum(m.visits_matched for m in scenes), sum(m.visits_true for m in scenes)),
        "zone_visit_precision": _ratio(sum(m.visits_matched for m in scenes), sum(m.visits_pred for m in scenes)),
        "dwell_mae_s": _ratio(sum(m.dwell_abs_err_s for m in scenes), sum(m.visits_matched for m in scenes)),
        "dwell_error": _ratio(sum(m.dwell_abs_err_s for m in scenes), sum(m.dwell_true_s for m in scenes)),
        "queue_depth_mae": _ratio(sum(m.queue_abs_err for m in scenes), sum(m.queue_seconds for m in scenes)),
        "staff_precision": _ratio(sum(m.staff_tp for m in scenes), sum(m.staff_flagged for m in scenes)),
        "staff_recall": _ratio(sum(m.staff_tp for m in scenes), sum(m.staff_true for m in scenes)),
        "conversion_abs_error_pp": 100 * sum(conv) / len(conv) if conv else float("nan"),
        "purchased_true": sum(m.purchased[1] for m in scenes),
        "purchased_measured": sum(m.purchased[0] for m in scenes),
        "mota": sum(mota) / len(mota) if mota else float("nan"),
        "idf1": sum(idf1) / len(idf1) if idf1 else float("nan"),
    }


def check_targets(summary: dict[str, float], mot: Sequence[MotResult]) -> list[tuple[str, bool, str]]:
    """(label, met, measured) for every promised target, IDF1 on TUD included."""
    out = []
    for key, op, bound, label in TARGETS:
        v = summary[key]
        ok = not math.isnan(v) and (v <= bound if op == "<=" else v >= bound)
        out.append((label, ok, f"{v:.3f}"))
    for r in mot:
        out.append(
            (f"IDF1 on {r.sequence} >= reference tracker", r.idf1 >= r.reference_idf1 - 1e-9,
             f"{r.idf1:.3f} vs {r.reference_idf1:.3f}")
        )
    return out


def _f(v: float, pct: bool = False) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    return f"{100 * v:.1f} %" if pct else f"{v:.2f}"


def scene_table(scenes: Sequence[SceneMetrics]) -> list[list[str]]:
    """Per-scene rows: name, entries, exits, unique, re-entry TP/pred/true, dwell MAE, queue MAE, staff, conv."""
    rows = []
    for m in scenes:
        rows.append([
            m.scene,
            f"{m.entries[0]}/{m.entries[1]}",
            f"{m.exits[0]}/{m.exits[1]}",
            f"{m.unique_visitors[0]}/{m.unique_visitors[1]}",
            f"{m.reentry_tp}/{m.reentry_pred}/{m.reentry_true}",
            _f(_ratio(m.dwell_abs_err_s, m.visits_matched)),
            _f(_ratio(m.queue_abs_err, m.queue_seconds)),
            f"{m.staff_tp}/{m.staff_flagged}/{m.staff_true}",
            f"{100 * m.conversion[0]:.0f}/{100 * m.conversion[1]:.0f}",
            _f(m.idf1),
        ])
    return rows


SCENE_HEADER = [
    "scene", "entries m/t", "exits m/t", "unique m/t", "re-entry ok/meas/true", "dwell MAE s", "queue MAE",
    "staff ev ok/flag/true", "conv % m/t", "IDF1",
]


def summary_rows(s: dict[str, Any]) -> list[list[str]]:
    """The pooled table: metric, measured, truth / note."""
    return [
        ["entry count error", _f(s["entry_count_error"], True), f"{s['entries_measured']} vs {s['entries_true']}"],
        ["exit count error", _f(s["exit_count_error"], True), f"{s['exits_measured']} vs {s['exits_true']}"],
        ["unique visitor error", _f(s["unique_visitor_error"], True),
         f"{s['unique_visitors_measured']} vs {s['unique_visitors_true']}"],
        ["re-entry precision", _f(s["reentry_precision"]), ""],
        ["re-entry recall", _f(s["reentry_recall"]), f"{s['reentries_true']} true re-entries"],
        ["zone visit recall / precision", f"{_f(s['zone_visit_recall'])} / {_f(s['zone_visit_precision'])}", ""],
        ["zone dwell error (matched visits)", _f(s["dwell_error"], True), f"MAE {_f(s['dwell_mae_s'])} s"],
        ["queue depth MAE (people)", _f(s["queue_depth_mae"]), "seconds with a queue"],
        ["staff exclusion precision", _f(s["staff_precision"]), "per event"],
        ["staff exclusion recall", _f(s["staff_recall"]), "per event"],
        ["conversion error (pp)", _f(s["conversion_abs_error_pp"]),
         f"purchased {s['purchased_measured']} vs {s['purchased_true']}"],
        ["tracking MOTA / IDF1 (scenes)", f"{_f(s['mota'])} / {_f(s['idf1'])}", ""],
    ]


def mot_rows(results: Sequence[MotResult]) -> list[list[str]]:
    return [
        [r.sequence, f"{r.mota:.3f}", f"{r.idf1:.3f}", str(r.id_switches), f"{r.reference_mota:.3f}",
         f"{r.reference_idf1:.3f}", str(r.reference_id_switches)]
        for r in results
    ]


MOT_HEADER = ["sequence", "MOTA", "IDF1", "ID sw", "ref MOTA", "ref IDF1", "ref ID sw"]


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
