import math

import numpy as np
import pytest

from streamad.alerts import AlertPolicy, decide
from streamad.calibrate import Calibration, smooth
from streamad.windows.buffers import Window


def test_smooth_kth_largest():
    s = np.array([1, 5, 2, 0, 7, 7, 1.0])
    np.testing.assert_array_equal(smooth(s, 1, 1), s)
    # 2nd largest of last 3
    np.testing.assert_array_equal(smooth(s, 2, 3), [-np.inf, 1, 2, 2, 2, 7, 7])


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


def _w(t):
    return Window("s", t, t + 1.0, np.zeros(1), key=f"s@{t}")


def test_one_alert_per_event_and_offline_twin_agrees():
    scores = [0, 5, 6, 5, 0, 0, 0, 0, 0, 0, 7, 0]
    starts = np.arange(len(scores)) * 0.5
    pol = AlertPolicy(threshold=1.0, cooldown_s=1.0, model_name="m", model_version="v")
    alerts = [pol.update("s", _w(t), s) for t, s in zip(starts, scores)]
    opened = [a is not None for a in alerts]
    assert sum(opened) == 2 and opened[1] and opened[10]
    _, opens = decide(np.array(scores, float), starts, starts + 1.0, 1.0, cooldown_s=1.0)
    assert list(opens) == opened
    # stable ids: the same window and model version give the same id
    again = AlertPolicy(threshold=1.0, model_version="v").update("s", _w(starts[1]), 5)
    assert again["alert_id"] == alerts[1]["alert_id"]
