"""Demand forecasts: the model on known patterns, the metrics on hand-computed cases, the backtest on the
real series that ship in registry packages and on the synthetic chain, and the per-store batch."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from workloads.inventory import datasets, synth
from workloads.inventory.backtest import Series, backtest, mase, smape, summarise
from workloads.inventory.batch import BatchSettings, forecast_frame, store_flags
from workloads.inventory.forecast import CLOSED, PROMO, SeasonalExpSmoothing, SeasonalNaive

WEEK = [10, 10, 10, 10, 20, 30, 5.0]


@pytest.mark.parametrize(
    ("actual", "pred", "train", "period", "expected"),
    [
        ([4.0, 6.0], [5.0, 5.0], [1, 2, 3, 4], 1, 1.0),  # MAE 1 / in-sample naive MAE 1
        ([4.0, 6.0], [4.0, 6.0], [1, 5, 2, 6, 1, 5], 2, 0.0),
        ([2.0], [4.0], [1, 5, 3, 7], 2, 1.0),  # MAE 2 / mean(|3-1|, |7-5|) = 2
        ([2.0], [4.0], [3, 3, 3], 1, float("nan")),  # constant history: no scale
    ],
)
def test_mase(actual, pred, train, period, expected):
    got = mase(np.array(actual), np.array(pred), np.array(train, float), period)
    assert (np.isnan(got) and np.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("actual", "pred", "expected"),
    [([10.0], [10.0], 0.0), ([0.0], [0.0], 0.0), ([0.0], [5.0], 200.0), ([10.0, 0.0], [12.0, 0.0], 100 / 11)],
)
def test_smape(actual, pred, expected):
    assert smape(np.array(actual), np.array(pred)) == pytest.approx(expected)


def test_seasonal_naive_repeats_last_period():
    y = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10.0])
    assert SeasonalNaive().forecast(y, 5, period=3).yhat.tolist() == [8, 9, 10, 8, 9]


def test_model_recovers_a_clean_weekly_pattern_and_level_shift():
    y = np.tile(WEEK, 12)
    f = SeasonalExpSmoothing(shrink_days=0).forecast(y, 7)
    assert f.yhat == pytest.approx(WEEK, abs=1e-6) and f.sigma == pytest.approx(0, abs=1e-9)
    shifted = np.concatenate([np.tile(WEEK, 12), 2 * np.tile(WEEK, 4)])  # demand doubles
    f2 = SeasonalExpSmoothing(shrink_days=0).forecast(shifted, 7)
    assert np.mean(f2.yhat) == pytest.approx(2 * np.mean(WEEK), rel=0.15)


def test_promotion_uplift_is_learnt_and_closed_days_are_zero():
    rng = np.random.default_rng(0)
    n, h = 16 * 7, 7
    y = rng.poisson(np.tile(WEEK, n // 7 + 2)[: n + h]).astype(float)
    flags = np.zeros((n + h, 3), dtype=bool)
    promo_days = [*range(10, n, 9), n + 2]
    flags[promo_days, PROMO] = True
    y[promo_days] *= 2.0
    flags[n + 5, CLOSED] = True
    f = SeasonalExpSmoothing().forecast(y[:n], h, 7, flags[:n], flags[n:])
    assert f.uplift["promo"] == pytest.approx(2.0, rel=0.2)
    no_promo = flags[n:].copy()
    no_promo[:, PROMO] = False
    base = SeasonalExpSmoothing().forecast(y[:n], h, 7, flags[:n], no_promo)
    assert f.yhat[2] == pytest.approx(base.yhat[2] * f.uplift["promo"])
    assert base.yhat[2] == pytest.approx(WEEK[(n + 2) % 7], rel=0.25)
    assert f.yhat[5] == 0.0


def _scores(series: list[Series], h: int, origins: int):
    models = [SeasonalNaive(), SeasonalExpSmoothing()]
    scores = [s for x in series for s in backtest(x, models, h, origins)]
    return {m.model: m for m in summarise(scores, {x.name: x.group for x in series})}


@pytest.mark.parametrize(
    ("loader", "h", "origins"),
    [(datasets.demand_orders, 5, 4), (datasets.cdnow, 7, 8), (lambda: datasets.online_retail(30), 7, 8)],
    ids=["demand_orders", "cdnow", "online_retail"],
)
def test_model_beats_seasonal_naive_on_real_series(loader, h, origins):
    by_model = _scores(loader(), h, origins)
    ours, base = by_model["ses_seasonal"], by_model["seasonal_naive"]
    assert ours.mase_mean < base.mase_mean, (ours, base)


def test_model_beats_seasonal_naive_on_the_synthetic_chain_and_uses_the_calendar():
    chain = synth.make_chain(["S1", "S2"], 12, 182, seed=5)
    series = []
    for (store, sku), g in chain.sales.groupby(["store_id", "sku"]):
        series.append(Series(f"{store}/{sku}", g["quantity"].to_numpy(float), 7,
                             synth.series_flags(chain, store, sku, len(g)), "synthetic"))
    models = [SeasonalNaive(), SeasonalExpSmoothing(), SeasonalExpSmoothing(use_calendar=False, name="no_calendar")]
    scores = [s for x in series for s in backtest(x, models, 7, 6)]
    by = {m.model: m.mase_mean for m in summarise(scores, {x.name: x.group for x in series})}
    assert by["ses_seasonal"] < by["no_calendar"] < by["seasonal_naive"]


def test_batch_forecasts_every_sku_from_the_day_after_the_history():
    chain = synth.make_chain(["S1"], 4, 70, start=date(2026, 1, 5), seed=1)
    sales = chain.sales[chain.sales["sku"] != "SKU0003"]  # a SKU without sales gets no forecast
    fc, series = forecast_frame(sales, chain.calendar, "S1", chain.end, BatchSettings(horizon_days=5), "run")
    assert sorted(set(fc.column("sku").to_pylist())) == ["SKU0000", "SKU0001", "SKU0002"]
    days = sorted(set(fc.column("date").to_pylist()))
    assert days == [chain.end + timedelta(days=i) for i in range(1, 6)]
    assert series.num_rows == 3 and min(series.column("sigma").to_pylist()) >= 0


def test_calendar_rows_apply_to_their_store_and_sku_or_to_all():
    cal = pd.DataFrame({"store_id": ["*", "S1", "S2"], "sku": ["*", "A", "A"],
                        "date": [date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 3)],
                        "kind": ["closed", "promo", "promo"]})
    flags = store_flags(cal, "S1", ["A", "B"], pd.date_range("2026-01-01", periods=4))
    assert flags[:, 1, CLOSED].tolist() == [True, True]
    assert flags[:, 2, PROMO].tolist() == [True, False]
