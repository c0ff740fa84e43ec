"""The trainer's Prophet fit as the replay uses it (real Prophet): a long history fitted on every k-th point, the
L-BFGS tolerance with its fallback, and weekly seasonality in the replay exactly as the weekly trainer fits it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import cmdstanpy
import pytest
from anomaly_core.streaming import StreamParams, score_with_bands, stream_bands
from anomaly_trainer import forecast
from anomaly_trainer.forecast import DAY_S, STEP_S, ModelSettings, fit, fit_stride

from benchmarks import synthetic
from infra.config.anomaly import AnomalyConfig
from infra.tools.anomaly_cli import band_fitter


def daily(days: int) -> tuple[list[float], list[float]]:
    n = days * 288
    ts = [synthetic.START + i * STEP_S for i in range(n)]
    return ts, [50 + 20 * math.sin(2 * math.pi * i / 288) + 2 * math.sin(i * 1.7) for i in range(n)]


def test_a_long_history_is_fitted_on_every_kth_point_ending_at_the_newest() -> None:
    settings = ModelSettings()
    assert settings.max_fit_points is not None
    ts, values = daily(30)  # 8,640 points: every third one
    model = fit(ts, values, settings)
    stride = math.ceil(len(ts) / settings.max_fit_points)
    assert stride == 3 and len(model.history) == math.ceil(len(ts) / stride) <= settings.max_fit_points
    assert model.history["ds"].iloc[-1].timestamp() == ts[-1]  # the newest point is always fitted
    steps = model.history["ds"].diff().dt.total_seconds().dropna().unique().tolist()
    assert steps == [stride * STEP_S]
    # The stride keeps 4 samples per period of the fastest seasonal term: 7 for the daily order 10 on 5-minute
    # data, none at all with the hourly term (3 cycles an hour), none below the limit.
    frame = forecast._frame(*daily(90))
    assert fit_stride(frame, settings) == 7
    assert fit_stride(frame, dataclasses.replace(settings, hourly=True)) == 1
    assert fit_stride(frame, dataclasses.replace(settings, max_fit_points=None)) == 1
    assert fit_stride(forecast._frame(*daily(14)), settings) == 1


def test_an_lbfgs_failure_at_the_loose_tolerance_refits_on_prophets_own_path(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[dict[str, Any]] = []
    optimize = cmdstanpy.CmdStanModel.optimize

    def failing_lbfgs(self: cmdstanpy.CmdStanModel, *args: Any, **kwargs: Any) -> Any:
        calls.append(dict(kwargs))
        if kwargs.get("algorithm") == "LBFGS":
            raise RuntimeError("Error during optimization! (simulated line-search failure)")
        return optimize(self, *args, **kwargs)

    monkeypatch.setattr(cmdstanpy.CmdStanModel, "optimize", failing_lbfgs)
    ts, values = daily(1)
    with caplog.at_level("WARNING"):
        model = fit(ts, values, ModelSettings())
    assert "refitting with Prophet's defaults" in caplog.text
    # L-BFGS with the tolerance, Prophet's Newton fallback refusing it, then Prophet's own path: L-BFGS at Stan's
    # default, then Newton.
    tol = ModelSettings().tol_rel_grad
    assert [(c.get("algorithm"), c.get("tol_rel_grad")) for c in calls] == [
        ("LBFGS", tol), ("Newton", tol), ("LBFGS", None), ("Newton", None)]
    assert model.params["k"].shape == (1, 1)


# ---------------------------------------------------------------------------------------------- weekly in the replay
def test_the_replay_fits_weekly_seasonality_from_two_weeks_and_finds_a_holiday() -> None:
    """A weekday at the weekend's level: only a model with a weekly term (fitted, as by the weekly trainer, on up
    to 90 days once 14 exist) sees it; the replay on the old 7-day window never could."""
    ts, values, events = synthetic.holiday(days=23)
    spans: list[float] = []

    def fitter(h_ts: Sequence[float], h_values: Sequence[float], start: float,
               periods: int) -> list[tuple[float, float, float, float]]:
        spans.append((h_ts[-1] - h_ts[0]) / DAY_S)
        return band_fitter(h_ts, h_values, start, periods)

    at = events[0]
    found = score_with_bands(values, stream_bands(ts, values, fitter), ts)
    assert max(spans) >= 14  # the refit after day 18 sees 18 days: Prophet's weekly term is on
    threshold = AnomalyConfig().confidence_threshold  # the shipped confidenceThreshold
    assert max(found[at:at + 24]) > threshold > max(found[14 * 288:at])  # found within two hours, nothing before
    old = score_with_bands(values, stream_bands(ts, values, band_fitter, StreamParams(window_s=7 * DAY_S)), ts)
    assert max(old[at:at + 24]) < threshold  # without the weekly term the holiday is the usual weekday's miss
