"""Rolling-origin backtests with MASE and sMAPE, so a model is only called better when it is.

For each series, the last `origins` windows of `h` days are forecast from everything before them
(the model never sees the window it is scored on). MASE scales the window's mean absolute error by
the in-sample mean absolute error of the seasonal-naive forecast (M4 convention), so 1.0 means "as
good in the test window as seasonal naive was in-sample"; sMAPE is the symmetric percentage error
(0-200; a day where both actual and forecast are 0 counts as 0).

Example:
    >>> import numpy as np
    >>> round(smape(np.array([10.0, 0.0]), np.array([12.0, 0.0])), 2)
    9.09
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workloads.inventory.forecast import FloatArray, Forecaster


def mase(actual: FloatArray, pred: FloatArray, train: FloatArray, period: int) -> float:
    """MASE with seasonal-naive in-sample scaling; NaN when the scale is 0 (a constant history)."""
    if len(train) <= period:
        return float("nan")
    scale = float(np.mean(np.abs(train[period:] - train[:-period])))
    if scale <= 0:
        return float("nan")
    return float(np.mean(np.abs(actual - pred))) / scale


def smape(actual: FloatArray, pred: FloatArray) -> float:
    denom = np.abs(actual) + np.abs(pred)
    ratio = np.divide(2 * np.abs(actual - pred), denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)
    return float(100 * np.mean(ratio))


@dataclass(frozen=True)
class SeriesScore:
    series: str
    model: str
    mase: float
    smape: float
    origins: int


@dataclass(frozen=True)
class Series:
    """One demand series for a backtest: history values, period, and optional calendar flags."""

    name: str
    y: FloatArray
    period: int = 7
    flags: npt.NDArray[np.bool_] | None = None  #: (days, 3) promo / holiday / closed, known in advance
    group: str = ""  #: data set name, for summaries


def backtest(series: Series, models: Sequence[Forecaster], h: int, origins: int) -> list[SeriesScore]:
    """Score each model on the last `origins` non-overlapping windows of `h` days."""
    y = np.asarray(series.y, dtype=float)
    out = []
    for model in models:
        m_scores, s_scores = [], []
        for k in range(origins, 0, -1):
            cut = len(y) - k * h
            if cut <= 2 * series.period:
                continue
            train, test = y[:cut], y[cut:cut + h]
            fh = series.flags[:cut] if series.flags is not None else None
            ff = series.flags[cut:cut + h] if series.flags is not None else None
            f = model.forecast(train, len(test), series.period, fh, ff)
            m_scores.append(mase(test, f.yhat, train, series.period))
            s_scores.append(smape(test, f.yhat))
        if m_scores:
            out.append(SeriesScore(series.name, model.name, float(np.nanmean(m_scores)) if np.isfinite(m_scores).any()
                                   else float("nan"), float(np.mean(s_scores)), len(m_scores)))
    return out


@dataclass(frozen=True)
class Summary:
    group: str
    model: str
    series: int
    mase_mean: float
    mase_median: float
    smape_mean: float
    wins_vs_baseline: float  #: share of series where the model's MASE beats the baseline's


def summarise(scores: Sequence[SeriesScore], groups: dict[str, str], baseline: str = "seasonal_naive") -> list[Summary]:
    """Mean / median per data set and model, and how often each model beats the baseline per series."""
    by: dict[tuple[str, str], list[SeriesScore]] = {}
    for s in scores:
        by.setdefault((groups.get(s.series, ""), s.model), []).append(s)
    base = {s.series: s.mase for s in scores if s.model == baseline}
    out = []
    for (group, model), rows in sorted(by.items()):
        m = np.array([r.mase for r in rows], dtype=float)
        ok = np.isfinite(m)
        wins = [r.mase < base[r.series] for r in rows
                if np.isfinite(r.mase) and np.isfinite(base.get(r.series, np.nan))]
        out.append(Summary(group, model, len(rows), float(np.mean(m[ok])) if ok.any() else float("nan"),
                           float(np.median(m[ok])) if ok.any() else float("nan"),
                           float(np.mean([r.smape for r in rows])), float(np.mean(wins)) if wins else float("nan")))
    return out


def markdown(summaries: Sequence[Summary], baseline: str = "seasonal_naive") -> str:
    lines = ["| data set | model | series | MASE mean | MASE median | sMAPE mean | series beating seasonal naive |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        wins = "-" if s.model == baseline else f"{s.wins_vs_baseline:.0%}"
        lines.append(f"| {s.group} | {s.model} | {s.series} | {s.mase_mean:.3f} | {s.mase_median:.3f} | "
                     f"{s.smape_mean:.1f} | {wins} |")
    return "\n".join(lines)
