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
