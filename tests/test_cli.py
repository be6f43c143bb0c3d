"""CLI contracts (other tools call these exactly)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from streamad.cli import main


def _run(*args):
    return subprocess.run([sys.executable, "-m", "streamad.cli", *map(str, args)], capture_output=True, text=True)


def test_every_subcommand_has_help():
    for sub in ("train", "score", "eval", "run", "replay", "broker", "demo", "alerts", "detectors"):
        r = _run(sub, "--help")
        assert r.returncode == 0 and "usage: streamad " + sub in r.stdout


def test_score_output_contract(audio_model, heldout_ambient, capsys):
    f = heldout_ambient[0]
    assert main(["score", "--model", str(audio_model), str(f)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    recs = [json.loads(x) for x in lines]
    assert len(recs) == 19  # 10 s file, 1 s windows every 0.5 s
    for i, r in enumerate(recs):
        assert list(r) == ["file", "start_s", "end_s", "score", "alert"]
        assert r["file"] == str(f)
        assert isinstance(r["start_s"], float) and isinstance(r["end_s"], float)
        assert isinstance(r["score"], float) and isinstance(r["alert"], bool)
        assert r["start_s"] == pytest.approx(0.5 * i) and r["end_s"] == pytest.approx(0.5 * i + 1.0)
    # deterministic: the same file scores the same
    assert main(["score", "--model", str(audio_model), str(f)]) == 0
    again = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [r["score"] for r in again] == [r["score"] for r in recs]


def test_score_resamples_any_rate_and_channels(audio_model, tmp_path, heldout_ambient, capsys):
    import soundfile as sf

    from streamad.io.files import load_audio

    x = load_audio(heldout_ambient[0], 16000)
    import librosa

    y = librosa.resample(x, orig_sr=16000, target_sr=44100)
    st = tmp_path / "stereo44k.flac"
    sf.write(st, np.stack([y, y], axis=1), 44100)
    assert main(["score", "--model", str(audio_model), str(st)]) == 0
    recs = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert len(recs) == 19 and recs[-1]["end_s"] == pytest.approx(10.0)


def test_bad_model_dir_is_one_line_exit_2(tmp_path, heldout_ambient):
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "weights.pt").write_bytes(b"garbage")
    r = _run("score", "--model", tmp_path, heldout_ambient[0])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "model.json" in r.stderr


def test_pickled_object_is_refused(tmp_path, audio_model, heldout_ambient):
    """A weights file that needs unpickling of arbitrary objects must not load."""
    import shutil

    import torch

    d = tmp_path / "m"
    shutil.copytree(audio_model, d)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, d / "weights.pt")
    r = _run("score", "--model", d, heldout_ambient[0])  # changed weights: refused before anything is read
    assert r.returncode == 2 and "weights do not match their recorded hash" in r.stderr and "pwned" not in r.stdout
    import hashlib

    h = hashlib.sha256((d / "weights.pt").read_bytes()).hexdigest()[:12]  # even with its hash recorded ...
    meta = json.loads((d / "model.json").read_text())
    meta["weights_sha256_12"], meta["model_version"] = h, f"{meta['detector']}-{h}"
    (d / "model.json").write_text(json.dumps(meta))
    r = _run("score", "--model", d, heldout_ambient[0])  # ... it is loaded weights-only: nothing is unpickled
    assert r.returncode == 2 and "cannot load weights safely" in r.stderr and "pwned" not in r.stdout


def test_missing_input_file(audio_model):
    r = _run("score", "--model", audio_model, "/nonexistent.wav")
    assert r.returncode == 2 and "no such file" in r.stderr


def test_train_cli_writes_versioned_model(tmp_path, ambient_files):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {detector: frame_gmm, params: {k: 2, iters: 5}, score_weights_choice: [{nll: 2}]}\n"
                   "train: {seam_windows: true}\n")
    r = _run("train", "--config", cfg, "--normal", *ambient_files[:3], "--out", tmp_path / "m", "--quiet")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["model_version"] == meta["model_version"] and meta["format"] == 1
    h = meta["calibration"]["holdout"]
    assert meta["calibration"]["threshold"] > max(h["max_score"], h["seam_max_score"])
    assert info["threshold"] >= info["threshold_before_seam"] == h["threshold_before_seam"]
    ch = info["weights_choice"]  # one component: {nll: 1} and {nll: 2} rank alike, the first is kept
    assert ch["chosen"] == 0 and len(ch["synthetic_auc"]) == 2 and ch["synthetic_auc"][0] == ch["synthetic_auc"][1] > 0.5
    assert info["score_weights"] == {"nll": 1.0} and h["weights_choice"]["chosen"] == 0
    assert info["hearing_check_auc"] == ch["synthetic_auc"][0] == h["hearing_check"]["synthetic_auc"]


def _links(where, files):
    where.mkdir(parents=True, exist_ok=True)
    for f in files:
        (where / f.name).symlink_to(f)
    return where


def test_eval_audio_cli_detects_glass_and_writes_pngs(audio_model, heldout_ambient, tmp_path):
    from tests.conftest import GLASS

    normal = _links(tmp_path / "normal", heldout_ambient[:3])
    events = _links(tmp_path / "events", sorted(GLASS.glob("*.wav"))[:3])
    r = _run("eval", "--model", audio_model, "--normal", normal, "--events", events, "--ebr", "6",
             "--out", tmp_path / "out", "--top", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    assert res["normal_files"] == 3 and res["event_files"] == 3
    e = res["per_ebr"]["6"]
    assert e["events"] == 3 and e["auc"] > 0.8 and e["recall"] >= 2 / 3  # glass at +6 dB is heard
    assert res["pure_normal"]["false_alerts"] == 0
    for png in [res["roc_png"], *res["residual_pngs"]]:
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_demo_runs_end_to_end_and_alerts_on_inserted_events(ambient_files, tmp_path):
    from tests.conftest import GLASS

    amb = _links(tmp_path / "ambient", ambient_files[20:28])  # 2 h of one site: 6 train, 2 replayed (20 s)
    r = _run("demo", "--ambient", amb, "--events", GLASS, "--steps", "150", "--speed", "10", "--n-events", "2",
             "--ebr", "6", "--work", tmp_path / "work")
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    rep = json.loads((tmp_path / "work" / "report.json").read_text())
    assert rep["events_inserted"] == 2 and rep["daemon_exit_code"] == 0
    assert rep["windows_scored"] == rep["windows_expected"] == 39
    assert rep["events_alerted"] >= 1 and rep["false_alerts"] == 0
    assert len(rep["evidence_png"]) == rep["alerts"] and rep["evidence_wav"]  # make demo leaves PNG + WAV
    assert "=== streamad demo summary ===" in r.stdout


def test_train_with_a_named_detector_trains_that_detector_everywhere_without_the_configs_escalation(capsys):
    """`streamad train --config configs/audio.yaml --detector NAME`: NAME is what the user asked for, so the
    config's train.escalate_to (which would replace it in hard places) is dropped, with a note; without
    --detector, or naming the config's own detector, the escalation stays."""
    from streamad.cli import build_parser, train_config
    from tests.conftest import ROOT

    base = ["train", "--config", str(ROOT / "configs" / "audio.yaml"), "--normal", "x", "--out", "o"]
    p = build_parser()
    assert train_config(p.parse_args(base)).train.escalate_to is not None
    assert train_config(p.parse_args(base + ["--detector", "frame_fullgmm"])).train.escalate_to is not None
    assert capsys.readouterr().err == ""
    cfg = train_config(p.parse_args(base + ["--detector", "gmgan", "--seed", "3"]))
    assert (cfg.model.detector, cfg.train.escalate_to, cfg.train.seed) == ("gmgan", None, 3)
    assert capsys.readouterr().err == "streamad: note: train.escalate_to is not used with --detector gmgan\n"
