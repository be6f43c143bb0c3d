import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streamad.config import from_dict
from streamad.io.files import load_audio
from streamad.model import AnomalyModel
from streamad.train import DataError, Recording, load_recordings, train_model


def test_twenty_seconds_of_one_recording_is_enough(tmp_path, ambient_files):
    """One 20 s recording of a scene: too little for a held-out calibration (4 s), so 3-fold
    cross-fitting calibrates on scores of windows each fold model never saw."""
    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[10:12]])
    wav = tmp_path / "scene.wav"
    sf.write(wav, sig, 16000)
    cfg = from_dict({"model": {"params": {"steps": 10}}})
    model = train_model(cfg, load_recordings(cfg, [wav]), tmp_path / "m", show_progress=False)
    t = model.meta["training"]
    assert t["recordings"] == 1 and t["calibration"] == "crossfit" and t["folds"] == 3
    assert t["train_seconds_of_data"] == pytest.approx(20.0) and t["holdout_seconds_of_data"] == pytest.approx(20.0)
    assert t["holdout_windows"] == 3 * (1 + (320000 // 3 - 16000) // 2000)  # each fold: 106 666 samples
    assert np.isfinite(model.threshold)
    again = AnomalyModel.load(tmp_path / "m", "cpu")
    s1, _ = again.score(np.stack([sig[:16000], sig[8000:24000]]))
    s2, _ = model.score(np.stack([sig[:16000], sig[8000:24000]]))
    np.testing.assert_allclose(s1, s2, rtol=1e-5)


def test_too_little_audio_is_a_clear_error(tmp_path):
    cfg = from_dict({})
    with pytest.raises(DataError, match="only 20000 samples/readings of normal history; need at least 32016"):
        train_model(cfg, [Recording("tiny.wav", np.zeros(20000, np.float32))], None, show_progress=False)


def test_cli_train_on_empty_dir_exits_2(tmp_path):
    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-m", "streamad.cli", "train", "--config", str(ROOT / "configs" / "audio.yaml"),
                        "--normal", str(tmp_path), "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert r.returncode == 2 and "no audio files" in r.stderr and r.stderr.count("\n") == 1


def test_score_weights_must_name_components(tmp_path, ambient_files):
    from streamad.config import ConfigError

    cfg = from_dict({"model": {"detector": "frame_gmm", "params": {"k": 2, "iters": 3}, "score_weights": {"irec": 1}}})
    with pytest.raises(ConfigError, match="model.score_weights.irec"):
        train_model(cfg, load_recordings(cfg, ambient_files[:2]), None, show_progress=False)


def test_short_series_trains_by_crossfitting(caplog):
    """186 readings of a SKAB sensor file (window 60): no held-out calibration is possible, so the
    model is calibrated by cross-fitting, with a warning."""
    from streamad.config import load
    from streamad.kinds import kind_of
    from streamad.train import min_history
    from tests.conftest import DATA, ROOT

    cfg = load(ROOT / "configs" / "sensor.yaml")
    cfg.model.params.update(steps=60)
    rec = kind_of(cfg).load(cfg, [DATA / "series" / "skab" / "data" / "valve1" / "0.csv"],
                            time_column="datetime", label_column="anomaly")[0]
    short = Recording(rec.name, rec.signal[:186], rec.channels)
    with caplog.at_level("WARNING", logger="streamad.train"):
        model = train_model(cfg, [short], None, show_progress=False)
    assert "short normal history (186" in caplog.text
    t = model.meta["training"]
    assert t["calibration"] == "crossfit" and t["folds"] == 2 and t["holdout_windows"] == 2 * (93 - 60 + 1)
    assert np.isfinite(model.threshold) and model.threshold > model.calibration.holdout["max_score"]
    assert min_history(60) == 136 <= 3 * 60


def test_very_short_series_trains_on_a_smaller_window(caplog):
    """117 readings (SKAB other/2.csv's first 15 %) are less than 2 x 60 + 16: the window shrinks to
    50 readings, the model keeps it, and scoring the rest of the file works with it."""
    from streamad.config import load
    from streamad.kinds import kind_of
    from streamad.scoring import score_recording
    from tests.conftest import DATA, ROOT

    cfg = load(ROOT / "configs" / "sensor.yaml")
    cfg.model.params.update(steps=40)
    rec = kind_of(cfg).load(cfg, [DATA / "series" / "skab" / "data" / "other" / "2.csv"],
                            time_column="datetime", label_column="anomaly")[0]
    with caplog.at_level("WARNING", logger="streamad.train"):
        model = train_model(cfg, [Recording(rec.name, rec.signal[:117], rec.channels)], None, show_progress=False)
    assert "window shrunk from 60 to 50 readings" in caplog.text
    assert model.frontend.window == 50 and model.cfg.series.window == 50
    r = score_recording(model, rec.signal[117:])
    assert len(r.scores) == len(rec.signal) - 117 - 50 + 1 and np.isfinite(r.scores).all()
    assert cfg.series.window == 60  # the caller's config is left alone
    with pytest.raises(DataError, match="only 47 samples/readings of normal history; need at least 48"):
        train_model(cfg, [Recording(rec.name, rec.signal[:47], rec.channels)], None, show_progress=False)


def test_crossfit_median_threshold_is_not_set_by_one_unlike_block():
    """Normal audio whose middle third is a phase the other two never have (a hum): the pooled
    cross-fitted threshold sits above that block's out-of-fold scores; the median of the three
    per-fold thresholds does not, and the model records both."""
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 16000
    sig = 0.05 * rng.standard_normal(144000).astype(np.float32)
    sig[48000:96000] += (0.3 * np.sin(2 * np.pi * 700 * t)).astype(np.float32)
    base = {"audio": {"n_mels": 64}, "model": {"detector": "frame_gmm", "params": {"k": 2, "iters": 20}},
            "train": {"calibration": "crossfit", "crossfit_folds": 3}}
    pooled = train_model(from_dict(base), [Recording("a", sig)], None, show_progress=False)
    base["train"]["crossfit_threshold"] = "median"
    med = train_model(from_dict(base), [Recording("a", sig)], None, show_progress=False)
    h = med.calibration.holdout
    assert len(h["fold_thresholds"]) == 3 and h["pooled_threshold"] == pytest.approx(pooled.threshold)
    assert med.threshold == pytest.approx(float(np.median(h["fold_thresholds"])))
    assert med.threshold < 0.5 * pooled.threshold


def test_seam_windows_put_the_join_of_the_held_back_audio_under_the_threshold():
    """A steady tone looped end to start jumps in phase at the join: a click no continuous stretch
    has. Calibrated on the continuous held-back audio only, that join scores far over the
    threshold; with train.seam_windows (the held-back audio also scored looped on itself) the
    threshold sits above it, and the rest of the calibration is unchanged (the seam only sets a floor)."""
    from streamad.benchmarks.scenes_run import merge, shipped
    from streamad.train import _seam_windows, split_recordings

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 12) / 16000
    sig = (0.3 * np.sin(2 * np.pi * 437.3 * t) + 0.002 * rng.standard_normal(len(t))).astype(np.float32)
    models = {}
    for seams in (False, True):
        cfg = from_dict(merge(shipped(), {"train": {"calibration": "holdout", "seam_windows": seams, "threads": 1}}))
        models[seams] = train_model(cfg, [Recording("tone", sig)], None, show_progress=False)
    plain, seamed = models[False], models[True]
    win, cal_hop = plain.frontend.window, 2000  # the 0.125 s training hop
    _, (held,) = split_recordings([Recording("tone", sig)], 0.2, win, win + cal_hop)
    join = _seam_windows(held, win, cal_hop)
    assert len(join) == 7 and np.array_equal(join[3], np.r_[held[-8000:], held[:8000]])  # the join mid-window
    assert plain.score(join)[0].max() > plain.threshold  # the join would alert
    assert seamed.score(join)[0].max() < seamed.threshold
    h = seamed.calibration.holdout
    assert h["seam_windows"] == 7 and h["threshold_before_seam"] == pytest.approx(plain.threshold)
    assert "seam_windows" not in plain.calibration.holdout


def test_seam_joins_calibrate_on_many_joins_of_the_held_back_audio(caplog):
    """train.seam_joins J: the held-back stretch's end-to-start join plus J - 1 joins of a random
    point of it to another (reproducible from the seed); every one of them ends under the threshold,
    which is at least the one-join threshold (the first join is the same)."""
    from streamad.benchmarks.scenes_run import merge, shipped
    from streamad.train import _seam_windows, split_recordings

    rng = np.random.default_rng(1)
    t = np.arange(16000 * 12) / 16000
    sig = ((0.2 + 0.1 * np.sin(2 * np.pi * 0.3 * t)) * np.sin(2 * np.pi * 311.1 * t)
           + 0.002 * rng.standard_normal(len(t))).astype(np.float32)
    models = {}
    for joins in (1, 12):
        cfg = from_dict(merge(shipped(), {"train": {"calibration": "holdout", "seam_windows": True, "seam_joins": joins,
                                                    "threads": 1}}))
        models[joins] = train_model(cfg, [Recording("tone", sig)], None, show_progress=False)
    win, cal_hop = models[1].frontend.window, 2000
    _, (held,) = split_recordings([Recording("tone", sig)], 0.2, win, win + cal_hop)
    one, many = _seam_windows(held, win, cal_hop), _seam_windows(held, win, cal_hop, 12)
    assert many.shape == (12 * 7,) + one.shape[1:] and np.array_equal(many[:7], one)
    assert np.array_equal(many, _seam_windows(held, win, cal_hop, 12)) and not np.array_equal(many[7:14], one)
    assert models[12].calibration.holdout["seam_windows"] == 12 * 7
    assert models[12].threshold >= models[1].threshold
    assert models[12].score(many)[0].max() < models[12].threshold
    assert models[1].score(many)[0].max() > models[1].threshold  # one join did not cover the others
    # without seam windows the joins are ignored, and training says so
    cfg = from_dict(merge(shipped(), {"train": {"calibration": "holdout", "seam_windows": False, "seam_joins": 12,
                                                "threads": 1}}))
    with caplog.at_level("WARNING", logger="streamad.train"):
        plain = train_model(cfg, [Recording("tone", sig)], None, show_progress=False)
    assert "train.seam_joins 12: ignored without train.seam_windows: true" in caplog.text
    assert "seam_windows" not in plain.calibration.holdout


def test_crossfit_blocks_deal_interleaved_blocks_to_the_folds():
    """train.crossfit_blocks: K x m contiguous blocks dealt to the folds in turn, every sample in
    exactly one fold; m = 1 is K contiguous blocks; a recording too short for m blocks of two
    windows gets fewer."""
    from streamad.train import _folds

    long, short = Recording("a", np.arange(1200.0)), Recording("b", np.arange(300.0))
    one = _folds([long], 3, 1, 50)
    assert [[(b[0], len(b)) for b in f] for f in one] == [[(0, 400)], [(400, 400)], [(800, 400)]]
    two = _folds([long, short], 3, 2, 50)  # long: 6 blocks of 200; short: 300 // (3*2*50) = 1 -> 3 of 100
    assert [[b[0] for b in f] for f in two] == [[0, 600, 0], [200, 800, 100], [400, 1000, 200]]
    dealt = np.sort(np.concatenate([b for f in two for b in f[:2]]))
    assert np.array_equal(dealt, np.arange(1200.0))
    cfg = from_dict({"kind": "series", "series": {"window": 16, "hop": 4},
                     "model": {"detector": "pca", "params": {}},
                     "train": {"calibration": "crossfit", "crossfit_blocks": 2}})
    rng = np.random.default_rng(0)
    model = train_model(cfg, [Recording("s", rng.standard_normal((400, 1)).astype(np.float32))], show_progress=False)
    assert model.meta["training"]["calibration"] == "crossfit" and np.isfinite(model.threshold)


def test_train_gains_db_teach_the_model_that_louder_normal_audio_is_normal(tmp_path):
    """audio.train_gains_db: the detector also trains on gain copies of the normal windows, so the
    same background 6 dB louder scores lower than without them; the calibration stays on the audio
    as recorded; a gain out of range is a one-line config error."""
    from streamad.config import ConfigError
    from streamad.windows.base import frame_windows

    rng = np.random.default_rng(0)
    sig = (0.02 * rng.standard_normal(16000 * 12)).astype(np.float32)
    base = {"audio": {"n_mels": 32}, "model": {"detector": "frame_gmm", "params": {"k": 2, "iters": 10}},
            "train": {"calibration": "holdout", "threads": 1}}
    plain = train_model(from_dict(base), [Recording("n", sig)], show_progress=False)
    base["audio"]["train_gains_db"] = [-6, 6]
    aug = train_model(from_dict(base), [Recording("n", sig)], show_progress=False)
    assert aug.meta["training"]["train_windows"] == 3 * plain.meta["training"]["train_windows"]
    assert aug.meta["training"]["holdout_windows"] == plain.meta["training"]["holdout_windows"]
    loud = frame_windows(sig * np.float32(2.0), 16000, 8000)
    s_plain, _ = plain.score(loud, 64)
    s_aug, _ = aug.score(loud, 64)
    assert np.median(s_aug) < np.median(s_plain)
    with pytest.raises(ConfigError, match=r"audio.train_gains_db: each gain must be a number of dB in \[-24, 24\]"):
        from_dict({"audio": {"train_gains_db": [30]}})


def test_train_mix_teaches_the_model_that_overlaps_of_normal_sounds_are_normal(tmp_path):
    """audio.train_mix: the detector also trains on sums of two normal windows, so two normal
    sounds that were only ever heard apart (a low tone, then a high one) heard together score under
    the threshold instead of far over it; the calibration stays on the audio as recorded; a count
    out of range is a one-line config error."""
    from streamad.config import ConfigError
    from streamad.windows.base import frame_windows

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    low, high = (0.1 * np.sin(2 * np.pi * f * t) for f in (300.0, 3000.0))
    sig = np.concatenate([low, high] * 3) + 0.005 * rng.standard_normal(16000 * 12)
    sig = sig.astype(np.float32)
    base = {"audio": {"n_mels": 32}, "model": {"detector": "frame_gmm", "params": {"k": 4, "iters": 20}},
            "train": {"calibration": "holdout", "threads": 1}}
    plain = train_model(from_dict(base), [Recording("n", sig)], show_progress=False)
    base["audio"]["train_mix"] = 2
    mixed = train_model(from_dict(base), [Recording("n", sig)], show_progress=False)
    assert mixed.meta["training"]["train_windows"] == 3 * plain.meta["training"]["train_windows"]
    assert mixed.meta["training"]["holdout_windows"] == plain.meta["training"]["holdout_windows"]
    noise = 0.005 * rng.standard_normal(len(low))
    both = frame_windows(((low + high) / np.sqrt(2) + noise).astype(np.float32), 16000, 8000)
    s_plain, _ = plain.score(both, 64)
    s_mixed, _ = mixed.score(both, 64)
    assert (s_plain > plain.threshold).all()  # never heard together: every window alerts
    assert (s_mixed < mixed.threshold).mean() > 0.5
    with pytest.raises(ConfigError, match=r"audio.train_mix: must be a whole number of mixed copies in \[0, 8\]"):
        from_dict({"audio": {"train_mix": 9}})


def test_train_synthetic_gives_the_exposure_classifier_labelled_windows_made_from_the_normal_audio(tmp_path):
    """audio.train_synthetic: windows of the normal audio with one generic synthetic sound each are
    made on demand (the same rows each read, by slice or row numbers), louder than the window they go
    into only within the documented range; training passes them as labelled windows (the front-end
    statistics and the calibration stay on the normal audio) and the model saves and loads with its
    exposure component; a detector that ignores labelled windows, or a value out of range, is a
    one-line config error."""
    from streamad.config import ConfigError
    from streamad.windows.base import frame_windows
    from streamad.windows.synthetic import EBR_DB, SyntheticWindows

    rng = np.random.default_rng(3)
    sig = (0.05 * rng.standard_normal(16000 * 8)).astype(np.float32)
    W = frame_windows(sig, 16000, 2000)
    syn = SyntheticWindows(W, 50, 16000, seed=1)
    a = syn[:]
    np.testing.assert_array_equal(a, syn[np.arange(50)])
    np.testing.assert_array_equal(a[10:20], syn[10:20])
    assert a.shape == (50, 16000) and a.dtype == np.float32
    added = a.astype(np.float64) - W[syn.pick]
    ebr = []
    for row, w in zip(added, W[syn.pick].astype(np.float64)):
        on = np.flatnonzero(row)
        span = row[on[0]:on[-1] + 1]  # one sound, at most 0.9 s
        assert 0 < len(span) <= 0.9 * 16000 + 1
        ebr.append(10 * np.log10(np.mean(span ** 2) / np.mean(w ** 2)))
    assert EBR_DB[0] - 0.05 < min(ebr) and max(ebr) < EBR_DB[1] + 0.05  # its RMS to the window's, in range
    assert max(ebr) - min(ebr) > 9  # and drawn across it
    assert not np.array_equal(a, SyntheticWindows(W, 50, 16000, seed=2)[:])
    # windows with context (audio.context_s): every sound lies in the span after the context, at its level
    lead = 8000
    Wc = frame_windows(sig, 16000 + lead, 2000)
    syn_c = SyntheticWindows(Wc, 50, 16000, seed=1, lead=lead)
    c, base_c = syn_c[:], Wc[syn_c.pick]
    np.testing.assert_array_equal(c[:, :lead], base_c[:, :lead])
    assert all(np.any(r != b) for r, b in zip(c[:, lead:], base_c[:, lead:]))
    for row, w in zip(c.astype(np.float64) - base_c, base_c.astype(np.float64)):
        on = np.flatnonzero(row)
        e = 10 * np.log10(np.mean(row[on[0]:on[-1] + 1] ** 2) / np.mean(w[lead:] ** 2))
        assert EBR_DB[0] - 0.05 < e < EBR_DB[1] + 0.05
    with pytest.raises(ValueError, match="lead"):
        SyntheticWindows(Wc, 5, 16000, lead=len(Wc[0]))
    base = {"audio": {"n_mels": 32, "train_synthetic": 0.5},
            "model": {"detector": "frame_fullgmm", "params": {"k": 2, "exposure": 8, "exposure_steps": 50}},
            "train": {"calibration": "holdout", "threads": 1}}
    m = train_model(from_dict(base), [Recording("n", sig)], tmp_path / "m", show_progress=False)
    tr = m.meta["training"]
    assert tr["synthetic_windows"] == round(0.5 * tr["train_windows"]) > 0 and tr["labelled_anomaly_windows"] == 0
    assert "exposure" in m.components(W[:3])
    loaded = AnomalyModel.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(W, 64)[0], m.score(W, 64)[0])
    base["model"] = {"detector": "frame_gmm", "params": {"k": 2}}
    with pytest.raises(ConfigError, match="audio.train_synthetic: detector 'frame_gmm' ignores labelled windows"):
        train_model(from_dict(base), [Recording("n", sig)], show_progress=False)
    with pytest.raises(ConfigError, match=r"audio.train_synthetic: synthetic windows per normal training window, a number in \[0, 8\]"):
        from_dict({"audio": {"train_synthetic": 9}})


def test_score_weights_choice_keeps_the_weights_that_best_hear_synthetic_sounds_in_held_back_audio(tmp_path, ambient_files):
    """model.score_weights_choice: each candidate weight set is scored on the held-back windows of real
    audio against the same windows with one synthetic sound each (by the fold models that never saw
    them); the best is kept, recorded with the model, and the model is then exactly the one trained with
    those weights given directly (the synthetic windows fit nothing). Ties go to score_weights; a NaN
    score ranks lowest. Bad weight sets are one-line config errors."""
    from streamad import weight_choice
    from streamad.calibrate import Calibration
    from streamad.config import ConfigError

    # the choice itself: component "a" tells added from normal, "b" does not
    rng = np.random.default_rng(0)
    normal = {"a": rng.normal(0, 1, 400), "b": rng.normal(0, 1, 400)}
    added = {"a": rng.normal(2, 1, 400), "b": rng.normal(0, 1, 400)}
    cal = Calibration({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0})
    best, aucs = weight_choice.choose([{"a": 0, "b": 1}, {"a": 1, "b": 0}, {"a": 1, "b": 1}], normal, added, cal)
    assert best == 1 and aucs[1] > aucs[2] > 0.8 > aucs[0] > 0.4
    assert weight_choice.choose([{"a": 1, "b": 0}, {"a": 2, "b": 0}], normal, added, cal)[0] == 0  # a tie: the first
    added["a"][:50] = np.nan
    nan_best, nan_aucs = weight_choice.choose([{"a": 1, "b": 0}, {"a": 0, "b": 1}], normal, added, cal)
    assert nan_aucs[0] < aucs[1] and nan_best == 0

    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[10:12]])  # 20 s of a real place
    first = {"nll": 1, "nll_top": 1, "nll_diag": 1, "nll_local_top": 1}
    cands = [{"nll": 1}, {**first, "band_top": 2}, {"nll_local_top": 1, "band_top": 1}]
    base = {"model": {"detector": "frame_fullgmm", "params": {"k": 2, "diag_k": 4, "local_k": 4, "band_top": 4},
                      "score_weights": first, "score_weights_choice": cands},
            "train": {"calibration": "crossfit", "threads": 1}}
    m = train_model(from_dict(base), [Recording("place", sig)], tmp_path / "m", show_progress=False)
    ch = m.calibration.holdout["weights_choice"]
    assert len(ch["synthetic_auc"]) == 4 and ch["synthetic_windows"] > 100
    assert ch["chosen"] == int(np.argmax(ch["synthetic_auc"]))
    chosen = ch["candidates"][ch["chosen"]]
    assert m.calibration.weights == chosen
    assert chosen == {k: float(([first] + cands)[ch["chosen"]].get(k, 0)) for k in chosen}
    assert len(set(ch["synthetic_auc"])) > 1  # the candidates do hear the sounds differently
    W = np.stack([sig[i:i + 16000] for i in range(0, len(sig) - 16000, 8000)])
    loaded = AnomalyModel.load(tmp_path / "m")
    assert loaded.calibration.weights == chosen and loaded.calibration.holdout["weights_choice"] == ch
    assert m.calibration.holdout["hearing_check"] == {"synthetic_auc": max(ch["synthetic_auc"]),
                                                      "synthetic_windows": ch["synthetic_windows"]}
    direct = dict(base, model={**base["model"], "score_weights": {k: v for k, v in chosen.items() if v},
                               "score_weights_choice": []})
    d = train_model(from_dict(direct), [Recording("place", sig)], None, show_progress=False)
    assert d.calibration.threshold == m.calibration.threshold
    assert d.calibration.holdout["hearing_check"]["synthetic_auc"] == max(ch["synthetic_auc"])
    assert "weights_choice" not in d.calibration.holdout
    np.testing.assert_array_equal(d.score(W, 64)[0], loaded.score(W, 64)[0])

    bad = dict(base, model={**base["model"], "score_weights_choice": [{"nll": 1, "irec": 1}]})
    with pytest.raises(ConfigError, match=r"model.score_weights_choice\[0\].irec: not a score component"):
        train_model(from_dict(bad), [Recording("place", sig)], None, show_progress=False)
    with pytest.raises(ConfigError, match=r"model.score_weights_choice\[1\].nll: a score weight must be >= 0"):
        from_dict({"model": {"score_weights_choice": [{"nll": 1}, {"nll": -1}]}})
    with pytest.raises(ConfigError, match=r"model.score_weights_choice\[0\]: needs at least one weight > 0"):
        from_dict({"model": {"score_weights_choice": [{}]}})
    with pytest.raises(ConfigError, match="model.score_weights: needs at least one weight > 0"):
        from_dict({"model": {"score_weights": {"nll": 0}}})
    with pytest.raises(ConfigError, match="model.score_weights_choice: the choice mixes synthetic sounds .* audio only"):
        from_dict({"kind": "series", "model": {"score_weights_choice": [{"nll": 1}]}})


def test_hearing_check_records_how_well_an_audio_model_hears_added_sounds_and_changes_nothing_else(ambient_files, caplog,
                                                                                                 monkeypatch):
    """train.hearing_check (on for audio): the ROC-AUC of held-back windows of real audio with one generic
    synthetic sound each against the same windows without, by the models that never saw them, is recorded
    with the model; the model itself (threshold, scores) is the same with the check off; below
    weight_choice.HEARING_WARN training says so in one warning line."""
    import logging

    from streamad import weight_choice

    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[20:22]])
    base = {"model": {"detector": "frame_fullgmm", "params": {"k": 2, "diag_k": 4}},
            "train": {"calibration": "crossfit", "threads": 1}}
    with caplog.at_level(logging.INFO, logger="streamad.train"):
        on = train_model(from_dict(base), [Recording("place", sig)], None, show_progress=False)
    hc = on.calibration.holdout["hearing_check"]
    assert 0.5 < hc["synthetic_auc"] <= 1.0 and hc["synthetic_windows"] == 2 * on.meta["training"]["holdout_windows"]
    assert [r.levelno for r in caplog.records if "hearing check" in r.getMessage()] == [logging.INFO]
    off = train_model(from_dict({**base, "train": {**base["train"], "hearing_check": False}}), [Recording("place", sig)],
                      None, show_progress=False)
    assert "hearing_check" not in off.calibration.holdout and off.calibration.threshold == on.calibration.threshold
    W = np.stack([sig[i:i + 16000] for i in range(0, len(sig) - 16000, 8000)])
    np.testing.assert_array_equal(off.score(W, 64)[0], on.score(W, 64)[0])
    caplog.clear()
    monkeypatch.setattr(weight_choice, "HEARING_WARN", 1.01)
    with caplog.at_level(logging.INFO, logger="streamad.train"):
        train_model(from_dict(base), [Recording("place", sig)], None, show_progress=False)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "hearing check" in r.getMessage()]
    assert len(warned) == 1 and "(< 1.01)" in warned[0] and "\n" not in warned[0]


def test_escalation_replaces_a_model_that_hears_badly_with_the_escalated_config_trained_on_the_same_audio(
        ambient_files, tmp_path, caplog):
    """train.escalate_to: when the first model's hearing check is below train.escalate_below, the kept model
    is the one the escalated config trains on the same audio (bit for bit the same as training that config
    directly), its record says what it replaced and why, and it carries its own front end (here 0.25 s of
    context before each window); above the bar the first model is kept, unchanged."""
    import logging

    from streamad.config import escalated

    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[30:32]])  # 20 s of a real place
    recs = [Recording("place", sig)]
    base = {"model": {"detector": "frame_fullgmm", "params": {"k": 2, "diag_k": 4}},
            "train": {"calibration": "crossfit", "threads": 1}}
    plain = train_model(from_dict(base), recs, None, show_progress=False)
    hc = plain.hearing_check
    assert 0.5 < hc < 1.0  # real audio: the generic sounds are heard, not perfectly
    esc = {"audio": {"context_s": 0.25}, "model": {"detector": "frame_gmm", "params": {"k": 2}, "score_weights": {}}}
    cfg = from_dict({**base, "train": {**base["train"], "escalate_to": esc, "escalate_below": 1.0}})
    with caplog.at_level(logging.WARNING, logger="streamad.train"):
        m = train_model(cfg, recs, tmp_path / "m", show_progress=False)
    assert [r.getMessage() for r in caplog.records if "escalate_below" in r.getMessage()] == [
        f"hearing check {hc:.3f} < train.escalate_below 1.00: training frame_gmm instead of frame_fullgmm for this "
        "place (costlier per window; train.escalate_to)"]
    assert m.name == "frame_gmm" and m.frontend.lead == 4000
    first = m.meta["training"]["escalated_from"]
    assert (first["detector"], first["hearing_check_auc"], first["threshold"]) == ("frame_fullgmm", hc, plain.threshold)
    direct = train_model(escalated(cfg), recs, None, show_progress=False)
    loaded = AnomalyModel.load(tmp_path / "m")
    assert loaded.name == "frame_gmm" and loaded.meta["training"]["escalated_from"] == first
    assert loaded.cfg.train.escalate_to is None and loaded.threshold == direct.threshold
    W = np.stack([sig[i:i + 20000] for i in range(0, len(sig) - 20000, 8000)])  # 0.25 s context + 1 s
    np.testing.assert_array_equal(m.score(W, 64)[0], direct.score(W, 64)[0])
    np.testing.assert_allclose(loaded.score(W, 64)[0], direct.score(W, 64)[0], rtol=1e-6, atol=1e-6)  # float32 file

    kept = train_model(from_dict({**base, "train": {**base["train"], "escalate_to": esc, "escalate_below": hc}}),
                       recs, None, show_progress=False)  # not below the bar: the first model stays
    assert kept.name == "frame_fullgmm" and "escalated_from" not in kept.meta["training"]
    assert kept.threshold == plain.threshold
    W1 = W[:, 4000:]
    np.testing.assert_array_equal(kept.score(W1, 64)[0], plain.score(W1, 64)[0])


def test_escalation_to_a_detector_that_cannot_be_built_is_a_one_line_error_before_any_training(
        ambient_files, monkeypatch, tmp_path):
    """The escalated detector is checked before the first model trains, in every place (not only where the
    hearing check would call for it): e.g. the sound-effects CNN without its weights."""
    from streamad.config import ConfigError

    monkeypatch.setenv("STREAMAD_SFX_WEIGHTS", str(tmp_path / "absent.pth"))
    cfg = from_dict({"model": {"detector": "frame_fullgmm", "params": {"k": 2}},
                     "train": {"escalate_to": {"model": {"detector": "frame_sfx", "params": {}, "score_weights": {}}}}})
    with pytest.raises(ConfigError, match=r"^train\.escalate_to: aiSFX weights: no file .*absent\.pth") as e:
        train_model(cfg, [Recording("x", np.zeros(16000 * 3, dtype=np.float32))], None, show_progress=False)
    assert "\n" not in str(e.value)
