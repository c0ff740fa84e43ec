"""The parameter candidates of the leave-one-family-out protocol (benchmarks/lofo.py; issue 28), one definition
for the benchmark and the tests that compare the shipped parameters with an earlier rule.

Each candidate is a whole ScoringParams: the signal switches are spelled out in BEFORE, so a change of the shipped
defaults does not change what a candidate is. TWO_DAY_NEWS is [1], the parameters shipped until issue 28's
news change (the news term over two days' 0.98 quantile, no shape cap).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

scoring = importlib.import_module("anomaly_core.scoring")
art = importlib.import_module("anomaly_core.art")

if TYPE_CHECKING:
    from anomaly_core.scoring import ScoringParams

# The signal switches of each candidate, spelled out so that a change of the shipped defaults does not change
# what a candidate is; [0] is the detector as issue 28 found it, [1] with the stuck signal (shipped until issue
# 28's news change: TWO_DAY_NEWS), [25] shipped since (ScoringParams()).
# Measured before and left out of the default run (each candidate costs a full replay of the 35 files): the 6-hour
# likelihood, the log shape and the two-week rank cap (picked in 4 of 5 folds, AWS -12 held out); issue 28's
# heavy-tailed likelihood (an exponential tail over the 0.9 quantile of the window means and spreads, Siffer et
# al. 2017) and Numenta's floors on the Gaussian (mean 0.03, std 0.0173): all lower the held-out mean (see
# docs/components/anomaly.md).
BEFORE = {"shape": True, "stuck": False, "long_window": False, "shape_log": False, "likelihood_cap": False,
          "shape_cap": False, "calibrate": 0.0, "record_days": 0, "record_rank": 1,
          "news_span": scoring.HISTORY_POINTS, "news_quantile": 0.98, "news_warmup": 0, "context": 0.0,
          "context_news": False, "news_unscheduled": False, "news_two_days": False,
          "shape_two_days": False, "shape_two_days_news": 0.0, "recurring_spatial": False,
          "onset_margin": 0.0, "shape_news": 0.0}
WEEK = scoring.WEEK_POINTS
CHANGES: tuple[dict[str, object], ...] = (
    {}, {"stuck": True}, {"stuck": True, "news_span": WEEK, "news_quantile": 0.995},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.999},
)
# Issue 28's later candidates, measured and not shipped (`--tried` adds them as [4]-[7]; docs/components/anomaly.md
# has the figures): offered with [0]-[3] they lower the held-out mean (57.0 -> 54.6: the four families' choice
# then picks [7] for AWS, [6] for the artificial, [5] for Twitter, each worse held out than [2]).
TRIED: tuple[dict[str, object], ...] = (
    # [2] without the first two days' residuals in the news span (the bands refitted on half a day, a day, two days
    # miss by more than a settled one; they cost [2] issue 15's variance-change case); the same at the 0.99
    # quantile (a daily 10-minute cron job is 0.7% of a week: below 1% it cannot set the usual excursion); then the
    # context signal (anomaly_core.context, after CAD OSE) beside the band's signals, on [1] and on [4].
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "news_warmup": scoring.NEWS_WARMUP},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.99, "news_warmup": scoring.NEWS_WARMUP},
    {"stuck": True, "context": 1.0},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "news_warmup": scoring.NEWS_WARMUP, "context": 1.0},
)
# The novelty signal after ARTime (anomaly_core.art), measured and not shipped (`--art` adds them after [0]-[3];
# docs/components/anomaly.md has the figures): beside the band's signals on [1] (the larger of the two), only with
# news (sqrt(news x novelty)), by itself (ARTime's place: no band, no stuck signal), and beside [2].
ART: tuple[dict[str, object], ...] = (
    {"stuck": True, "art": 1.0},
    {"stuck": True, "art": 1.0, "art_fusion": "news"},
    {"stuck": True, "art": 1.0, "art_fusion": "alone"},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 1.0},
    # Only its stronger novelties (weight 0.8: 0.6 needs a match a whole allowed mismatch below the vigilance),
    # on [2] and [1]; on [2] with the vigilance 1.5 standard deviations below the mean match.
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.8},
    {"stuck": True, "art": 0.8},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.8,
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
    # [10]'s neighbours: on [1] (the shipped base), at 2 standard deviations, at weight 0.7.
    {"stuck": True, "art": 0.8, "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.8,
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=2.0)},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.7,
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
    # [13]'s neighbours: on [1], at weight 0.6, at 2 standard deviations.
    {"stuck": True, "art": 0.7, "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.6,
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.7,
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=2.0)},
    # The signal as a damper: the band's confidence halved while the last hour's shape is a known category, on [1]
    # and [2] (novelty 0.7 at 1.5 sd beside it, as [13]).
    {"stuck": True, "art": 0.7, "art_fusion": "familiar",
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "art": 0.7, "art_fusion": "familiar",
     "art_params": dataclasses.replace(art.DEFAULT_ART, vigilance_sd=1.5)},
)

# Per-metric calibration (issue 28, measured, not shipped; `--calibrated` adds them after [0]-[3]): the Twitter
# family's false onsets come from bursts the series makes every few days, judged at 0.9+ by the band's signals like
# the labelled ones. [4] the confidence rescaled against the metric's own daily peaks of two weeks (their median
# maps to 0); [5] the same with the shape likelihood capped by the spread's rank in the last week; [6] [5] with an
# excursion no larger than the largest daily peak residual of two weeks held to news 0.5; [7] [2] with the shape
# cap; [8] [1] with the two weeks' record alone; [9] [5] with the 0.6 quantile of the daily peaks; [10]-[16] below.
_NINETEEN: dict[str, object] = {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True,
                                 "news_warmup": scoring.NEWS_WARMUP, "news_unscheduled": True, "news_two_days": True}
CALIBRATED: tuple[dict[str, object], ...] = (
    {"stuck": True, "calibrate": 0.5},
    {"stuck": True, "calibrate": 0.5, "shape_cap": True},
    {"stuck": True, "calibrate": 0.5, "shape_cap": True, "record_days": 14},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True},
    {"stuck": True, "record_days": 14},
    {"stuck": True, "calibrate": 0.6, "shape_cap": True},
    # Measured after the windows followed each series' period (scoring.Windows), when LOFO picks [7] in every fold:
    # [7] with the confidence calibrated (the 0.6 quantile), [7] and [1] with a 28-day record.
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True, "calibrate": 0.6},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True, "record_days": 28},
    {"stuck": True, "record_days": 28},
    # The news quantile over the unscheduled excursions only (ScoringParams.news_unscheduled: a recurring residual,
    # a cron job's, leaves the week's quantile, record and shape cap; issue 15's cron_then_event): [11], [7], [2]
    # with the warm-up left out (TRIED's first), and [1], each with it.
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True, "record_days": 28,
     "news_warmup": scoring.NEWS_WARMUP, "news_unscheduled": True},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True,
     "news_warmup": scoring.NEWS_WARMUP, "news_unscheduled": True},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "news_warmup": scoring.NEWS_WARMUP,
     "news_unscheduled": True},
    {"stuck": True, "news_unscheduled": True},
    # The controls: [7] and [11] with the warm-up left out, without the switch.
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True, "news_warmup": scoring.NEWS_WARMUP},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True, "record_days": 28,
     "news_warmup": scoring.NEWS_WARMUP},
    # [14] with the usual excursion one the series made on two days (ScoringParams.news_two_days: issue 15's
    # event_after_larger, where one 30-minute excursion set the week's quantile and shape rank), then with the
    # shape cap's rank too (shape_two_days).
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True,
     "news_warmup": scoring.NEWS_WARMUP, "news_unscheduled": True, "news_two_days": True},
    {"stuck": True, "news_span": WEEK, "news_quantile": 0.995, "shape_cap": True,
     "news_warmup": scoring.NEWS_WARMUP, "news_unscheduled": True, "news_two_days": True, "shape_two_days": True},
    # [19] with the recurring damp on the spatial signal too (issue 15's cron_then_event at a threshold of 0.55),
    # then the shape rule of [20] only while the level's news is at least 0.85 (3.3 times the usual excursion: a
    # variance change around the same mean is not) and, its neighbour, 0.75.
    {**_NINETEEN, "recurring_spatial": True},
    {**_NINETEEN, "recurring_spatial": True, "shape_two_days": True, "shape_two_days_news": 0.85},
    {**_NINETEEN, "recurring_spatial": True, "shape_two_days": True, "shape_two_days_news": 0.75},
    # [19] with an onset beating the last day's confidences by more than 0.01 (a saturated excursion's creeping
    # confidence is one onset).
    {**_NINETEEN, "onset_margin": 0.01},
    # [24] with the shape signal only beyond the usual excursion (news above 0.5): a band refit's step in the
    # spread saturated the shape likelihood on a point inside the band (the synthetic holiday series, day 20):
    # shipped.
    {**_NINETEEN, "onset_margin": 0.01, "shape_news": 0.5},
)


def candidates(changes: Sequence[dict[str, object]] = CHANGES) -> list[ScoringParams]:
    base = dataclasses.replace(scoring.ScoringParams(), **BEFORE)
    return [dataclasses.replace(base, **change) for change in changes]


CANDIDATES = candidates()
TWO_DAY_NEWS = CANDIDATES[1]
