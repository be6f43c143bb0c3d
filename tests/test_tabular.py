"""Tabular input: CSV / NPY / NPZ / MAT tables through `streamad train` and `streamad score`."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from streamad.cli import main
from streamad.config import TabularConfig
from streamad.io.files import InputError
from streamad.io.tabular import load_tables
from streamad.models.registry import DETECTORS
from streamad.windows.tabular import TabularFrontend


def _csv(path, rows, header="id,proto,bytes,dur,label"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(300):
        bad = i % 30 == 0
        rows.append([i, "icmp" if bad else rng.choice(["tcp", "udp"]), round(rng.normal(100, 10) + 300 * bad, 3),
                     round(rng.random(), 3), int(bad)])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("kind: tabular\ntabular: {label_column: label, ignore_columns: [id]}\n"
                   "model: {detector: iforest}\nalerts: {target_false_alerts_per_hour: 36.0, cooldown_s: 0.0}\n")
    return _csv(tmp_path / "train.csv", rows), cfg


def _score(capsys, model, *files):
    assert main(["score", "--model", str(model), *map(str, files)]) == 0
    return [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]


def test_train_and_score_a_csv_with_categories(table, tmp_path, capsys):
    train, cfg = table
    assert main(["train", "--config", str(cfg), "--normal", str(train), "--out", str(tmp_path / "m"), "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labelled_anomaly_windows"] == 10 and info["train_windows"] + info["holdout_windows"] == 290
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["config"]["tabular"]["categories"] == {"proto": ["icmp", "tcp", "udp"]}
    new = _csv(tmp_path / "new.csv", [[1, "tcp", 101, 0.5], [2, "udp", 950, 0.5], [3, "gre", 99, 0.4]],
               header="id,proto,bytes,dur")  # no label column, an unseen category
    recs = _score(capsys, tmp_path / "m", new)
    assert [list(r) for r in recs] == [["file", "row", "score", "alert"]] * 3
    assert [r["row"] for r in recs] == [0, 1, 2] and all(r["file"] == str(new) for r in recs)
    assert recs[1]["score"] > recs[0]["score"]
    thr = meta["calibration"]["threshold"]
    assert [r["alert"] for r in recs] == [r["score"] > thr for r in recs]  # one row = one window, 1-of-1 rule
    assert _score(capsys, tmp_path / "m", new) == recs  # deterministic


def test_scoring_a_table_without_a_training_column_is_a_one_line_error(table, tmp_path, capsys):
    train, cfg = table
    assert main(["train", "--config", str(cfg), "--normal", str(train), "--out", str(tmp_path / "m"), "--quiet"]) == 0
    capsys.readouterr()
    bad = _csv(tmp_path / "bad.csv", [[1, "tcp", 0.5]], header="id,proto,dur")
    assert main(["score", "--model", str(tmp_path / "m"), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "column 'bytes'" in err and "\n" not in err
    text = _csv(tmp_path / "text.csv", [[1, "tcp", "lots", 0.5]], header="id,proto,bytes,dur")
    assert main(["score", "--model", str(tmp_path / "m"), str(text)]) == 2
    assert "row 0: column 'bytes'" in capsys.readouterr().err


def test_npy_npz_mat_and_their_labels(tmp_path):
    from scipy.io import savemat

    X = np.arange(40, dtype=np.float64).reshape(10, 4)
    y = (np.arange(10) % 5 == 0).astype(float)
    np.save(tmp_path / "a.npy", np.column_stack([X, y]))
    np.savez(tmp_path / "b.npz", X=X, y=y)
    savemat(tmp_path / "c.mat", {"X": X, "y": y[:, None]})
    for name, label in (("a.npy", "-1"), ("b.npz", "y"), ("c.mat", "y")):
        (t,) = load_tables([tmp_path / name], TabularConfig(label_column=label))
        np.testing.assert_array_equal(t.X, X)
        np.testing.assert_array_equal(t.y, y.astype(int))
    with pytest.raises(InputError, match="no array 'Z'"):
        load_tables([tmp_path / "b.npz"], TabularConfig(data_key="Z"))
    np.savez(tmp_path / "bad.npz", X=X, y=y * 2)
    with pytest.raises(InputError, match="labels must be 0"):
        load_tables([tmp_path / "bad.npz"], TabularConfig(label_column="y"))
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(InputError, match="not a table file"):
        load_tables([tmp_path / "x.txt"], TabularConfig())


def test_headerless_csv_and_frontend_state(tmp_path):
    (tmp_path / "n.csv").write_text("1,2\n3,4\n5,6\n")
    (t,) = load_tables([tmp_path / "n.csv"], TabularConfig())
    assert t.features == ["0", "1"] and t.X.shape == (3, 2)
    fe = TabularFrontend(TabularConfig(scaling="minmax"))
    fe.fit(t.X[:, None, :])
    z = fe.transform(torch.tensor([[[5.0, float("nan")]]]))
    assert z.tolist() == [[1.0, 0.0]]  # (5 - 1) / 4; a missing value maps to the centre
    fe2 = TabularFrontend(TabularConfig(scaling="minmax"))
    fe2.load_state(fe.state())
    assert torch.equal(fe2.transform(torch.tensor(t.X[:, None, :]).float()), fe.transform(torch.tensor(t.X[:, None, :]).float()))


def test_odds_arrhythmia_mat_through_the_cli(data_dir, tmp_path, capsys):
    """Real table: train on the inliers of the ODDS file (label array y), score every row."""
    mat = data_dir / "tabular" / "odds" / "arrhythmia.mat"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("kind: tabular\ntabular: {label_column: y}\nmodel: {detector: iforest}\n")
    assert main(["train", "--config", str(cfg), "--normal", str(mat), "--out", str(tmp_path / "m"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["labelled_anomaly_windows"] == 66
    recs = _score(capsys, tmp_path / "m", mat)
    from scipy.io import loadmat

    y = loadmat(str(mat))["y"].ravel()
    assert len(recs) == 452 and roc_auc_score(y, [r["score"] for r in recs]) > 0.75


def test_detectors_command_lists_every_registered_name(capsys):
    assert main(["detectors"]) == 0
    assert capsys.readouterr().out.splitlines() == sorted(DETECTORS)


def test_registry_names_match_their_classes_and_listing_imports_no_torch():
    for name, cls in DETECTORS.items():  # imports every entry: each one resolves to its class
        assert cls.name == name, f"registry entry {name!r} resolves to {cls.__name__} named {cls.name!r}"
    code = ("import sys; from streamad.cli import main; main(['detectors']); "
            "heavy = sorted({'torch', 'sklearn', 'librosa'} & set(sys.modules)); "
            "sys.stderr.write(repr(heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == sorted(DETECTORS) and r.stderr.endswith("[]"), r.stderr[-2000:]


def test_waveform_detector_on_a_table_is_a_config_error(table, tmp_path, capsys):
    train, cfg = table
    assert main(["train", "--config", str(cfg), "--normal", str(train), "--out", str(tmp_path / "m"),
                 "--detector", "wavenet", "--quiet"]) == 2
    assert "raw audio" in capsys.readouterr().err
