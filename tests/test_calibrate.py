import math

import numpy as np
import pytest

from streamad.calibrate import Calibration


def test_standardisation_and_threshold():
    rng = np.random.default_rng(0)
    comps = {"a": rng.normal(10, 2, 2000), "b": rng.normal(0, 1000, 2000)}
    cal = Calibration.fit_components(comps, hop_s=0.5, target_false_alerts_per_hour=1.0)
    z = cal.combine(comps)
    assert abs(np.median(z)) < 0.1
    # neither component dominates: their standardised spreads match
    za = (comps["a"] - cal.center["a"]) / cal.scale["a"]
    zb = (comps["b"] - cal.center["b"]) / cal.scale["b"]
    assert za.std() == pytest.approx(zb.std(), rel=0.1)
    cal.fit_threshold([z[:1000], z[1000:]])
    assert cal.threshold > z.max()
    assert math.isfinite(cal.threshold)
    # a stricter target gives a higher threshold
    strict = Calibration.fit_components(comps, hop_s=0.5, target_false_alerts_per_hour=0.01)
    strict.fit_threshold([z])
    assert strict.threshold > cal.threshold


def test_threshold_round_trip():
    cal = Calibration({"a": 1.0}, {"a": 2.0}, {"a": 1.0}, threshold=3.5)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_threshold_hand_worked_rate_clusters_and_clamp():
    # one sequence 0..99 at hop 0.5 s, 1 false alert per hour. u = p90 = 89.1; the 10 scores above
    # it (90..99) are one run: extremal index theta = 1 cluster / 10 exceedances = 0.1; per-window
    # rate p = 1 * 0.5 / 3600 / 0.1; exponential tail mean beta = mean(90..99) - 89.1 = 5.4;
    # threshold = u + beta * ln(0.1 / p) = 89.1 + 5.4 * ln(72).
    seq = np.arange(100.0)
    cal = Calibration({"a": 0.0}, {"a": 1.0}, {"a": 1.0}, hop_s=0.5, target_false_alerts_per_hour=1.0)
    cal.fit_threshold([seq])
    assert cal.holdout["extremal_index"] == pytest.approx(0.1)
    assert cal.holdout["per_window_rate"] == pytest.approx(0.5 / 3600 / 0.1)
    assert cal.threshold == pytest.approx(89.1 + 5.4 * math.log(72.0))
    # a frequent-alert target puts the tail below the largest held-back score: clamped just above it
    loose = Calibration({"a": 0.0}, {"a": 1.0}, {"a": 1.0}, hop_s=0.5, target_false_alerts_per_hour=500.0)
    loose.fit_threshold([seq])
    assert loose.holdout["tail_threshold"] < 99.0
    assert loose.threshold == pytest.approx(99.0, abs=1e-6) and loose.threshold > 99.0
    # k-of-n: the threshold is set on the smoothed statistic (2nd largest of the last 2 = running min)
    k2 = Calibration({"a": 0.0}, {"a": 1.0}, {"a": 1.0}, hop_s=0.5, min_windows=2, of_windows=2)
    k2.fit_threshold([np.array([0.0, 10.0, 0.0, 0.0, 10.0, 0.0] * 5)])
    assert k2.holdout["max_score"] == 0.0


def test_short_sequences_under_k_of_n_still_calibrate():
    """Cross-fitting folds can be shorter than min_windows: each still gives its k-of-n value (all of
    its windows over the threshold), so 2-of-3 calibrates on 2-window sequences instead of failing."""
    cal = Calibration({"a": 0.0}, {"a": 1.0}, {"a": 1.0}, hop_s=0.5, min_windows=3, of_windows=4)
    seqs = [np.array([1.0, 2.0]), np.array([0.5, 3.0]), np.array([4.0])]
    cal.fit_threshold(seqs)
    assert math.isfinite(cal.threshold) and cal.holdout["windows"] == 3
    # per sequence the k-th largest once all its windows are in view: min(1, 2), min(0.5, 3), 4
    assert cal.holdout["max_score"] == 4.0 and cal.threshold > 4.0


def test_a_floor_sequence_only_raises_the_threshold_and_is_smoothed_like_the_rest():
    """raise_threshold_above: the threshold ends just above the largest k-of-n smoothed score of
    the given sequences, is never lowered, and the rate estimate (tail) is left as it was."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, 4000)
    cal = Calibration({"a": 0.0}, {"a": 1.0}, {"a": 1.0}, hop_s=0.5, min_windows=2, of_windows=3)
    cal.fit_threshold([z])
    before, tail = cal.threshold, cal.holdout["tail_threshold"]
    cal.raise_threshold_above([np.array([0.0, 50.0, 0.0, 0.0])], "seam")  # one window alone: 1 of 3, no alert
    assert cal.threshold == before
    cal.raise_threshold_above([np.array([0.0, 40.0, 30.0, 0.0])], "seam")  # 2 of 3 over 30 -> smoothed 30
    assert cal.threshold == pytest.approx(30.0) and cal.threshold > 30.0
    assert cal.holdout["seam_max_score"] == 30.0 and cal.holdout["threshold_before_seam"] == before
    assert cal.holdout["tail_threshold"] == tail and cal.holdout["seam_windows"] == 4
