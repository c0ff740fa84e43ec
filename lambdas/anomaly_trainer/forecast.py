"""Prophet fitting, validation and the forecast band: the trainer Lambda and the offline scorer share this.

Seasonalities follow the history (Prophet's "Seasonality, Holiday Effects, And Regressors",
https://facebook.github.io/prophet/docs/seasonality,_holiday_effects,_and_regressors.html): daily from 2 days of
data, weekly only from 2 weeks, and the
hourly term (`period=1/24` day) only when asked for AND it lowers the validation error ("only where it helps").
A fitted Prophet model cannot be fitted again, so validation fits its own model on everything but the last
7 days, and the published model is a second, fresh fit on the whole history.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

DAY_S = 86400
STEP_S = 300
HOLDOUT_DAYS = 7
INTERVAL_WIDTH = 0.95
HOURLY_MIN_GAIN = 0.02  # the hourly term must lower the validation error by 2% (relative) to be kept
MIN_FIT_POINTS = 24  # two hours of 5-minute points: less than that is not a series worth a model
HOURLY_FOURIER_ORDER = 3
SAMPLES_PER_PERIOD = 4  # a decimated history keeps 4 samples per period of its fastest seasonal term
LBFGS_MIN_POINTS = 100  # Prophet optimises with Newton below 100 points, L-BFGS from there


def _prepare_tmp() -> None:
    """cmdstanpy writes its CSV outputs under the temp dir; on Lambda only /tmp is writable."""
    tmp = os.environ.get("TMPDIR") or tempfile.gettempdir()
    if not os.access(tmp, os.W_OK):
        os.environ["TMPDIR"] = "/tmp"
        tempfile.tempdir = "/tmp"


_prepare_tmp()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from anomaly_core.scoring import RESIDUAL_MEMORY, BandPoint, residual  # noqa: E402
from anomaly_core.settings import SeasonalityMode  # noqa: E402
from prophet import Prophet  # noqa: E402
from prophet.serialize import model_to_json  # noqa: E402

# cmdstanpy logs two INFO lines per fit; the trainer's own log says what was fitted.
# (cmdstanpy resets its level on every fit, so the logger is disabled: failures still raise.)
logging.getLogger("cmdstanpy").disabled = True
logging.getLogger("prophet").setLevel(logging.WARNING)
log = logging.getLogger(__name__)


class TrainingError(ValueError):
    """The history cannot give a model (too short, constant NaNs...): a clear message, never a traceback."""


@dataclass(frozen=True)
class ModelSettings:
    seasonality_mode: SeasonalityMode = "additive"
    hourly: bool = False
    uncertainty_samples: int = 1000  # Prophet's default: fewer samples made the band (and NAB score) jump +-6 points
    changepoint_prior_scale: float = 0.05
    daily_fourier_order: int = 10  # Prophet's default 4 smooths away sharp daily shapes (business hours, batches)
    # L-BFGS stops when the relative gradient is below this (x machine epsilon; Stan's default 1e7). At the default
    # a 90-day fit crawls 1,342 iterations through the changepoints' Laplace prior for a log-probability gain of 12
    # out of 72,124 (11.1 s); at 1e8 it stops after 143 (2.5 s) with yhat within 0.5% of a half-width and the band
    # width within 2.5% (`benchmarks.bench_anomaly`). None: Stan's default.
    tol_rel_grad: float | None = 1e8
    # A longer history is fitted on every k-th point (counted back from the newest), k = ceil(points / this), k at
    # most what keeps 4 samples per period of the fastest seasonal term (7 on 5-minute data with the daily order
    # 10, 1 with the hourly term): decimating keeps the noise level Prophet's sigma (so the band width) estimates,
    # unlike averaging. Measured on a 90-day synthetic series (`benchmarks.bench_anomaly`): Prophet bands of the
    # replay 118 s -> 20 s, synthetic NAB score 45.9 -> 67.1 (the full fit's changepoints chase the weekend steps
    # and widen the band); 2 weeks of 5-minute points, so the 14-16-day nab-dev replays are never decimated.
    max_fit_points: int | None = 4032


@dataclass(frozen=True)
class Errors:
    mape: float | None  # None when the actual values contain zeros (MAPE undefined)
    smape: float  # symmetric MAPE in [0, 2]: zero-safe
    points: int

    @property
    def headline(self) -> float:
        """The error compared with the limit: MAPE where defined, else sMAPE."""
        return self.mape if self.mape is not None else self.smape

    def to_json(self) -> dict[str, float | int | None]:
        return {"mape": self.mape, "smape": self.smape, "points": self.points, "headline": self.headline}


def _frame(ts: Sequence[float], values: Sequence[float]) -> pd.DataFrame:
    rows = [(t, v) for t, v in zip(ts, values, strict=True) if v is not None and math.isfinite(v)]
    frame = pd.DataFrame({"ds": pd.to_datetime([t for t, _ in rows], unit="s"), "y": [v for _, v in rows]})
    return frame.drop_duplicates("ds", keep="last").sort_values("ds").reset_index(drop=True)


def fit(ts: Sequence[float], values: Sequence[float], settings: ModelSettings) -> Prophet:
    """A fresh Prophet fit; seasonalities enabled according to the span of the history."""
    frame = _frame(ts, values)
    if len(frame) < MIN_FIT_POINTS:
        raise TrainingError(f"{len(frame)} finite points of history; at least {MIN_FIT_POINTS} are needed")
    span_days = (frame["ds"].iloc[-1] - frame["ds"].iloc[0]).total_seconds() / DAY_S
    stride = fit_stride(frame, settings)
    if stride > 1:
        frame = frame.iloc[::-1].iloc[::stride].iloc[::-1].reset_index(drop=True)
    if settings.seasonality_mode == "multiplicative" and (frame["y"] <= 0).any():
        raise TrainingError("multiplicative seasonality needs a positive series; this one has values <= 0 "
                            "(use seasonalityMode: additive)")
    if settings.tol_rel_grad is not None and len(frame) >= LBFGS_MIN_POINTS:
        model = _model(settings, span_days)
        try:
            model.fit(frame, algorithm="LBFGS", tol_rel_grad=settings.tol_rel_grad)
            return model
        except ValueError as e:
            # L-BFGS stopped abnormally and Prophet's Newton fallback refuses an L-BFGS tolerance: a fresh model
            # on Prophet's own path (default tolerance, then Newton).
            if "requires that algorithm" not in str(e):
                raise
            log.warning("L-BFGS at tol_rel_grad=%g failed; refitting with Prophet's defaults", settings.tol_rel_grad)
    model = _model(settings, span_days)
    model.fit(frame)
    return model


def fit_stride(frame: pd.DataFrame, settings: ModelSettings) -> int:
    """Every how many points the history is fitted (1: all of them); see ModelSettings.max_fit_points."""
    if settings.max_fit_points is None or len(frame) <= settings.max_fit_points:
        return 1
    step_s = float(frame["ds"].diff().dt.total_seconds().median())
    fastest_s = min([DAY_S / settings.daily_fourier_order, *([3600 / HOURLY_FOURIER_ORDER] if settings.hourly else [])])
    most = max(1, int(fastest_s / (SAMPLES_PER_PERIOD * step_s))) if step_s > 0 else 1
    return min(math.ceil(len(frame) / settings.max_fit_points), most)


def _model(settings: ModelSettings, span_days: float) -> Prophet:
    model = Prophet(
        interval_width=INTERVAL_WIDTH,
        seasonality_mode=settings.seasonality_mode,
        # Prophet's own rule (2 days); measured: enabling it from 1 day lowered the NAB score from 64.7 to 53.4.
        daily_seasonality=settings.daily_fourier_order if span_days >= 2 else False,
        weekly_seasonality=span_days >= 14,
        yearly_seasonality=False,
        uncertainty_samples=settings.uncertainty_samples,
        changepoint_prior_scale=settings.changepoint_prior_scale,
    )
    if settings.hourly and span_days >= 1:
        model.add_seasonality(name="hourly", period=1 / 24, fourier_order=HOURLY_FOURIER_ORDER)
    return model


def band(model: Prophet, start_ts: float, periods: int,
         step_s: int = STEP_S) -> list[tuple[float, float, float, float]]:
    """(epoch s, yhat, lower, upper) on the `step_s` grid from `start_ts` (aligned down to the grid)."""
    start = int(start_ts // step_s) * step_s
    future = pd.DataFrame({"ds": pd.to_datetime([start + i * step_s for i in range(periods)], unit="s")})
    # The interval comes from random trend/noise samples: a fixed seed makes the same history give the same band.
    np.random.seed(0)
    fc = model.predict(future)
    out = []
    for ds, yhat, lo, hi in zip(fc["ds"], fc["yhat"], fc["yhat_lower"], fc["yhat_upper"], strict=True):
        out.append((ds.timestamp(), float(yhat), float(lo), float(hi)))
    return out


def errors(actual: Sequence[float], predicted: Sequence[float]) -> Errors:
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if math.isfinite(a) and math.isfinite(p)]
    if not pairs:
        raise TrainingError("no validation points to compare")
    has_zero = any(a == 0 for a, _ in pairs)
    mape = None if has_zero else sum(abs((a - p) / a) for a, p in pairs) / len(pairs)
    smape = sum(0.0 if a == p == 0 else 2 * abs(a - p) / (abs(a) + abs(p)) for a, p in pairs) / len(pairs)
    return Errors(mape=mape, smape=smape, points=len(pairs))


def validate(ts: Sequence[float], values: Sequence[float], settings: ModelSettings,
             holdout_days: int = HOLDOUT_DAYS) -> Errors:
    """Fit on everything before the last `holdout_days` and measure the error on them."""
    cut = ts[-1] - holdout_days * DAY_S
    train = [(t, v) for t, v in zip(ts, values, strict=True) if t <= cut]
    test = [(t, v) for t, v in zip(ts, values, strict=True) if t > cut and v is not None and math.isfinite(v)]
    if len(train) < MIN_FIT_POINTS or not test:
        raise TrainingError(f"history of {(ts[-1] - ts[0]) / DAY_S:.1f} days is too short to hold out "
                            f"{holdout_days} days for validation")
    model = fit([t for t, _ in train], [v for _, v in train], settings)
    future = pd.DataFrame({"ds": pd.to_datetime([t for t, _ in test], unit="s")})
    predicted = model.predict(future)["yhat"].tolist()
    return errors([v for _, v in test], predicted)


@dataclass(frozen=True)
class TrainResult:
    model_json: str
    band: list[tuple[float, float, float, float]]
    errors: Errors
    hourly: bool
    history_points: int
    history_days: float
    # In-sample residuals of the last RESIDUAL_MEMORY points (a week, for same-time-last-week comparisons): the
    # detector's starting memory, so a new or reset detector state can judge excursions at once.
    seed_residuals: list[float]


def train(ts: Sequence[float], values: Sequence[float], settings: ModelSettings, now: float,
          horizon_days: int = 7) -> TrainResult:
    """Validate (keeping the hourly term only if it helps), fit on everything, forecast the next days."""
    chosen = dataclasses.replace(settings, hourly=False)
    err = validate(ts, values, chosen)
    if settings.hourly:
        with_hourly = dataclasses.replace(settings, hourly=True)
        err_hourly = validate(ts, values, with_hourly)
        if err_hourly.headline < err.headline * (1 - HOURLY_MIN_GAIN):
            chosen, err = with_hourly, err_hourly
    model = fit(ts, values, chosen)
    periods = horizon_days * DAY_S // STEP_S
    return TrainResult(model_json=model_to_json(model), band=band(model, now, periods), errors=err,
                       hourly=chosen.hourly, history_points=len(ts), history_days=(ts[-1] - ts[0]) / DAY_S,
                       seed_residuals=in_sample_residuals(model, ts, values))


def in_sample_residuals(model: Prophet, ts: Sequence[float], values: Sequence[float]) -> list[float]:
    recent = [(t, v) for t, v in zip(ts, values, strict=True) if v is not None and math.isfinite(v)]
    recent = recent[-RESIDUAL_MEMORY:]
    np.random.seed(0)
    fc = model.predict(pd.DataFrame({"ds": pd.to_datetime([t for t, _ in recent], unit="s")}))
    return [round(residual(v, BandPoint(t, float(yh), float(lo), float(hi))), 6)
            for (t, v), yh, lo, hi in zip(recent, fc["yhat"], fc["yhat_lower"], fc["yhat_upper"], strict=True)]


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
