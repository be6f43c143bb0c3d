"""``zoo --add-seeds``: runs of more seeds join the rows of earlier seeds (hand-worked values)."""
import pytest

from streamad.benchmarks.zoo import add_seeds


def test_more_seeds_join_lists_weight_digit_means_and_recompute_summaries():
    old = {"gmgan": {"detector": "gmgan", "values": {"auc": [0.9]}, "fit_s": [10.0], "note": "n",
                     "per_digit": {"0": 0.8, "1": 1.0}, "summary": {"auc": {"mean": 0.9, "std": 0.0, "n": 1}}},
           "pca": {"detector": "pca", "values": {"auc": [0.7]}, "fit_s": [1.0]}}
    new = {"gmgan": {"detector": "gmgan", "values": {"auc": [0.6, 0.9]}, "fit_s": [20.0, 30.0], "note": "n",
                     "per_digit": {"0": 0.5, "1": 0.7}, "summary": {"auc": {"mean": 0.75, "std": 0.15, "n": 2}}},
           "kde": {"detector": "kde", "values": {"auc": [0.5]}}}
    got = add_seeds(old, new)
    g = got["gmgan"]
    assert g["values"]["auc"] == [0.9, 0.6, 0.9] and g["fit_s"] == [10.0, 20.0, 30.0]
    assert g["per_digit"] == {"0": pytest.approx((0.8 + 2 * 0.5) / 3), "1": pytest.approx((1.0 + 2 * 0.7) / 3)}
    assert g["summary"]["auc"]["mean"] == pytest.approx(0.8) and g["summary"]["auc"]["n"] == 3
    assert g["summary"]["auc"]["std"] == pytest.approx(0.1414213, abs=1e-6)  # population std of .9 .6 .9
    assert got["pca"] == old["pca"] and got["kde"] == new["kde"]  # rows of one side only: as they were
    assert old["gmgan"]["values"]["auc"] == [0.9]  # inputs untouched
