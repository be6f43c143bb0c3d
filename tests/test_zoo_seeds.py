"""``zoo --add-seeds`` and re-runs of some rows: runs of more seeds join the rows of earlier seeds
(hand-worked values); an interrupted re-run loses none of its finished runs."""
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


def test_an_interrupted_rerun_keeps_the_table_and_its_finished_runs(tmp_path, monkeypatch):
    """Plumbing only (made-up values): a re-run of some rows that dies midway leaves the finished
    table untouched and every run it finished in results.arrhythmia.partial.json; a later re-run
    merges its rows and removes its own side file, not another dataset's."""
    import json

    from streamad.benchmarks import zoo
    from streamad.benchmarks import zoo_specs as S

    old = {"datasets": {"arrhythmia": {"protocol": "p", "metric": "f1", "seeds": [0, 1, 2], "wall_s": 1.0,
                                       "rows": {"iforest": {"detector": "iforest", "values": {"f1": [0.4]}}}}}}
    (tmp_path / "results.json").write_text(json.dumps(old))
    other = tmp_path / "results.kdd99.partial.json"  # left by an interrupted re-run of another dataset
    other.write_text("{}")
    side = tmp_path / "results.arrhythmia.partial.json"
    args = ["arrhythmia", "--detectors", "alad", "--out", str(tmp_path), "--doc", str(tmp_path / "D.md")]

    def one_alad_run(die):
        def run(name, a, seeds, only, t):
            t.add(next(s for s in S.arrhythmia_specs() if s.row == "alad"), {"f1": 0.5, "precision": 0.5, "recall": 0.5})
            if die:
                raise KeyboardInterrupt
        return run

    monkeypatch.setattr(zoo, "run_dataset", one_alad_run(die=True))
    with pytest.raises(KeyboardInterrupt):
        zoo.main(args)
    assert json.loads((tmp_path / "results.json").read_text()) == old
    part = json.loads(side.read_text())
    assert part["dataset"] == "arrhythmia" and part["rows"]["alad"]["values"]["f1"] == [0.5]
    assert "--detectors alad" in part["command"]

    monkeypatch.setattr(zoo, "run_dataset", one_alad_run(die=False))
    assert zoo.main(args) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["datasets"]["arrhythmia"]["rows"]
    assert set(rows) == {"iforest", "alad"} and rows["alad"]["values"]["f1"] == [0.5]
    assert not side.exists() and other.exists()
