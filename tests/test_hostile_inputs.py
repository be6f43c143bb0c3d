"""Hostile or broken input at the command line and in files: one line on stderr and exit 2, before
any work whose result would be lost; nothing written outside the places it belongs."""
import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from streamad.cli import main
from streamad.config import ConfigError
from streamad.errors import described, first_line
from streamad.evidence import stream_dir
from streamad.io.codecs import PayloadError, decode_audio, encode_audio
from streamad.io.files import InputError, load_audio
from streamad.models.registry import create

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def _one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("streamad: error: "), err
    for n in needles:
        assert n in err, err


def test_first_line_keeps_a_reason_for_exceptions_without_a_message():
    assert first_line(EOFError()) == "EOFError"
    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("first\nsecond")) == "first"
    assert first_line(ValueError("  \n ")) == "ValueError"
    assert first_line(ValueError("x" * 500), 20) == "x" * 20
    assert described(KeyError("x")) == "KeyError: 'x'"  # the dead letters' "unprocessable record (...)"
    assert described(EOFError()) == "EOFError"
    assert described(ValueError("first\nsecond")) == "ValueError: first"
    assert described(ValueError("x" * 500), 20) == "ValueError: " + "x" * 20


def test_empty_weights_with_their_hash_recorded_are_one_line(tmp_path, audio_model, heldout_ambient, capsys):
    d = tmp_path / "m"
    shutil.copytree(audio_model, d)
    (d / "weights.pt").write_bytes(b"")
    meta = json.loads((d / "model.json").read_text())
    h = hashlib.sha256(b"").hexdigest()[:12]
    meta["weights_sha256_12"], meta["model_version"] = h, f"{meta['detector']}-{h}"
    (d / "model.json").write_text(json.dumps(meta))
    _one_line(*_cli(capsys, "score", "--model", d, heldout_ambient[0]), "cannot load weights safely", "EOFError")


def test_a_config_that_is_not_text_is_one_line(tmp_path, ambient_files, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"model:\n  detector: \xbc\xff\x00\x01")
    _one_line(*_cli(capsys, "train", "--config", cfg, "--normal", ambient_files[0], "--out", tmp_path / "m"),
              "not UTF-8", "0xbc")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("rate", [16000, 22050])
def test_audio_with_nan_or_inf_is_refused_in_one_line(tmp_path, audio_model, rate, capsys):
    x = np.random.default_rng(0).normal(0, 0.1, rate * 2).astype(np.float32)
    x[100], x[2000] = np.nan, np.inf
    f = tmp_path / "bad.wav"
    sf.write(f, x, rate, subtype="FLOAT")
    with pytest.raises(InputError, match="2 of .* samples are NaN or infinite"):
        load_audio(f, 16000)
    _one_line(*_cli(capsys, "score", "--model", audio_model, f), "NaN or infinite")
    sf.write(f, np.nan_to_num(x, nan=0.0, posinf=0.0), rate, subtype="FLOAT")
    assert np.isfinite(load_audio(f, 16000)).all()  # the same file without them loads


@pytest.mark.parametrize("params,needle", [
    ({"diag_k": "x"}, "model.params.diag_k: a whole number, got 'x'"),
    ({"k": 0}, "model.params.k: a whole number >= 1"),
    ({"diag_k": -8}, "model.params.diag_k: a whole number >= 0"),
    ({"k": True}, "model.params.k: a whole number, got True"),
    ({"top": 0}, "model.params.top: a fraction in (0, 1]"),
    ({"floor": 1.0}, "model.params.floor: a quantile in [0, 1)"),
    ({"shrink": math.nan}, "model.params.shrink: a finite number, got nan"),
    ({"reg": "0.01"}, "model.params.reg: a finite number"),
])
def test_detector_parameters_of_the_wrong_kind_are_config_errors(params, needle):
    with pytest.raises(ConfigError) as e:
        create("frame_fullgmm", params)
    assert needle in str(e.value)
    create("frame_fullgmm", {"diag_k": 8, "floor": 0, "local_k": 8, "band_top": 4, "shrink": 1})  # ints for floats
    with pytest.raises(ConfigError, match="model.params.steps: a whole number, got 'many'"):
        create("gmgan", {"steps": "many"})  # the kind check holds for every detector


def test_training_checks_the_detector_parameters_first(tmp_path, ambient_files, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: audio\nmodel: {detector: frame_fullgmm, params: {k: 0}}\n")
    _one_line(*_cli(capsys, "train", "--config", cfg, "--normal", ambient_files[0], "--out", tmp_path / "m",
                    "--quiet"), "model.params.k")


def test_output_places_are_checked_before_the_work(tmp_path, ambient_files, audio_model, capsys):
    f = tmp_path / "a-file"
    f.write_text("x")
    _one_line(*_cli(capsys, "train", "--config", CONFIGS / "audio.yaml", "--normal", ambient_files[0],
                    "--out", f), "exists and is not a directory")
    _one_line(*_cli(capsys, "train", "--config", CONFIGS / "audio.yaml", "--normal", ambient_files[0],
                    "--out", f / "sub"), "cannot write there")
    d = tmp_path / "wav"
    d.mkdir()
    for ebr in ("abc", "", "nan", "400"):
        _one_line(*_cli(capsys, "eval", "--model", audio_model, "--normal", d, "--events", d, "--ebr", ebr), "--ebr")
    _one_line(*_cli(capsys, "eval", "--model", audio_model, "--normal", d, "--events", d, "--out", f),
              "exists and is not a directory")


@pytest.mark.parametrize("extra,needle", [
    (["--topic", ""], "invalid topic name"),
    (["--topic", "bad topic/x"], "invalid topic name"),
    (["--stream-id", ""], "--stream-id must not be empty"),
    (["--chunk-s", "0"], "--chunk-s must be"),
    (["--chunk-s", "-1"], "--chunk-s must be"),
    (["--speed", "-1"], "--speed must be"),
    (["--start-ts", "nan"], "--start-ts must be"),
    (["--sample-rate", "0"], "--sample-rate must be"),
])
def test_replay_refuses_settings_that_would_send_nothing_usable(extra, needle, ambient_files, capsys):
    """Checked before connecting: a closed port with a 1 s broker timeout would otherwise exit 3."""
    args = {"--topic": "audio", "--stream-id": "mic-1"}
    rest = []
    for i in range(0, len(extra), 2):
        if extra[i] in args:
            args[extra[i]] = extra[i + 1]
        else:
            rest += extra[i:i + 2]
    flat = [x for kv in args.items() for x in kv]
    _one_line(*_cli(capsys, "replay", "--bootstrap", "127.0.0.1:1", "--broker-timeout", "1", *flat, *rest,
                    ambient_files[0]), needle)


def test_replay_batch_must_be_positive(tmp_path, capsys):
    f = tmp_path / "s.csv"
    f.write_text("t,v\n" + "".join(f"{i},{i % 7}\n" for i in range(50)))
    _one_line(*_cli(capsys, "replay", "--bootstrap", "127.0.0.1:1", "--broker-timeout", "1", "--topic", "s",
                    "--stream-id", "x", "--time-column", "t", "--batch", "0", f), "--batch must be")


def test_run_log_level_is_one_of_the_known_ones(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--config", str(CONFIGS / "audio.yaml"), "--log-level", "BOGUS"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("sid", ["..", ".", "a/b", "a_b", "/etc/passwd", "../../x", "a\\b", "ü", "x" * 300, "", "mic-1"])
def test_evidence_folders_stay_under_the_root_and_never_collide(sid, tmp_path):
    root = (tmp_path / "evidence").resolve()
    d = (root / stream_dir(sid)).resolve()
    assert d.parent == root and d.name not in ("", ".", "..") and len(d.name) <= 120
    if sid == "mic-1":
        assert d.name == "mic-1"  # plain names keep their folder


def test_evidence_folders_of_different_ids_differ():
    ids = ["..", ".", "a/b", "a_b", "a:b", "/etc/passwd", "../../x", "a\\b", "ü", "x" * 300, "x" * 301, "", "mic-1"]
    assert len({stream_dir(s) for s in ids}) == len(ids)


def test_a_chunk_without_its_dtype_header_is_missing_header():
    key, value, headers = encode_audio("mic", np.zeros(1600, np.float32), 16000, 0.0)
    decode_audio(key, value, headers)
    with pytest.raises(PayloadError, match="^missing header 'dtype'$"):
        decode_audio(key, value, [(k, v) for k, v in headers if k != "dtype"])


def test_infinite_training_cells_do_not_become_the_scale():
    from streamad.config import TabularConfig
    from streamad.windows.tabular import TabularFrontend

    x = np.random.default_rng(0).normal(size=(100, 1, 3))
    x[5, 0, 1], x[7, 0, 2] = np.inf, -np.inf
    for scaling in ("standard", "minmax"):
        fe = TabularFrontend(TabularConfig(scaling=scaling))
        fe.fit(x)
        assert torch.isfinite(fe.center).all() and torch.isfinite(fe.scale).all()
        clean = TabularFrontend(TabularConfig(scaling=scaling))
        clean.fit(np.where(np.isinf(x), np.nan, x))
        assert torch.equal(fe.center, clean.center) and torch.equal(fe.scale, clean.scale)


def test_a_score_weight_naming_no_component_stops_training_before_any_fit(tmp_path, ambient_files, monkeypatch):
    from streamad import train as T
    from streamad.config import from_dict
    from streamad.kinds import Recording

    calls = []
    monkeypatch.setattr(T, "_fit", lambda *a, **k: calls.append(1))
    sig = load_audio(ambient_files[0], 16000)
    for weights in ({"score_weights": {"nll": 1, "nl_top": 1}},
                    {"score_weights_choice": [{"nll": 1}, {"band_topp": 2}]}):
        cfg = from_dict({"kind": "audio", "model": {"detector": "frame_fullgmm", **weights}})
        with pytest.raises(ConfigError, match=r"not a score component of frame_fullgmm") as e:
            T.train_model(cfg, [Recording("a", sig)], None, show_progress=False)
        assert ("nl_top" if "score_weights" in weights else "score_weights_choice[1].band_topp") in str(e.value)
    assert not calls


def test_fmin_at_or_above_the_top_of_the_spectrum_is_a_config_error():
    from streamad.config import from_dict

    for audio in ({"fmin": 20000}, {"fmin": 8000}, {"fmin": 4000, "fmax": 4000}):
        with pytest.raises(ConfigError, match="audio.fmin: must be below"):
            from_dict({"kind": "audio", "audio": audio})
    from_dict({"kind": "audio", "audio": {"fmin": 4000}})


def test_python_dash_m_streamad_is_the_command_line():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "streamad", "detectors"], capture_output=True, text=True)
    assert r.returncode == 0 and "frame_fullgmm" in r.stdout


def test_a_series_column_without_any_number_is_refused(tmp_path, capsys):
    from streamad.io.seriesfiles import load_series_files

    f = tmp_path / "s.csv"
    f.write_text("t,a,b\n" + "".join(f"{i},{i % 5},{'nan' if i % 2 else ''}\n" for i in range(40)))
    with pytest.raises(InputError, match="column 'b' holds no numbers"):  # asked for (a model's channels)
        load_series_files([f], time_column="t", value_columns=["a", "b"])
    for cols in (None, ["a"]):  # by default a column without numbers is not a channel
        (d,) = load_series_files([f], time_column="t", value_columns=cols)
        assert d.channels == ["a"] and np.isfinite(d.values).all()


def test_an_unexpected_error_prints_its_traceback_and_exits_5_not_1(monkeypatch, capsys):
    import streamad.cli as cli

    def broken(a):
        raise RuntimeError("deliberately broken")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with(parser(), broken))
    code = cli.main(["detectors"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERNAL == 5
    assert "Traceback" in err and "RuntimeError: deliberately broken" in err
    assert err.strip().splitlines()[-1].startswith("streamad: internal error")


def _with(parser, func):
    for action in parser._subparsers._group_actions:
        action.choices["detectors"].set_defaults(func=func)
    return parser


def test_the_alert_table_shows_foreign_and_hostile_records_on_one_line_each():
    from streamad.io.tail import _line, format_record

    good = format_record({"stream_id": "lobby", "window_start_iso": "2026-12-04T10:00:00Z", "score": 7.5,
                          "threshold": 5.0, "evidence": {"png": "e/lobby/1.png"}})
    assert "lobby" in good and "7.50 / 5.00" in good and good.endswith("e/lobby/1.png")
    closed = format_record({"type": "event_closed", "stream_id": "lobby", "peak_score": 9.25, "duration_s": 3.0})
    assert "peak 9.25" in closed and "3.0 s" in closed
    for rec in ({"score": "x"}, {"evidence": "s"}, {"type": "event_closed", "peak_score": None, "duration_s": "long"},
                {"stream_id": "evil\nFAKE ROW\x1b[31m", "score": 1.0, "threshold": None},
                {"stream_id": ["a"], "window_start_iso": 5, "evidence": {"png": "a\nb"}}):
        line = format_record(rec)
        assert "\n" not in line and "\x1b" not in line and line.isprintable(), line
    assert "?" in format_record({"score": "x"})
    assert _line(b"\xff\xfe") == "(not a streamad alert: 2 bytes)" and _line(b"[1, 2]").startswith("(not a")


def test_alerts_arguments_and_an_absent_broker_are_one_line(capsys):
    for secs in ("0", "-1", "nan"):
        _one_line(*_cli(capsys, "alerts", "--bootstrap", "127.0.0.1:9", "--topic", "t", "--max-seconds", secs),
                  "--max-seconds")
    _one_line(*_cli(capsys, "alerts", "--bootstrap", "no-port-here", "--topic", "t", "--max-seconds", "1"),
              "--bootstrap")


@pytest.mark.parametrize("extra,needle", [
    (["--speed", "-2"], "--speed"), (["--speed", "nan"], "--speed"), (["--ebr", "1e6"], "--ebr"),
    (["--ebr", "nan"], "--ebr"), (["--n-events", "-1"], "--n-events"), (["--seed", "-1"], "--seed"),
    (["--steps", "-5"], "--steps"), (["--work", "/proc/no-such-dir/x"], "--work"),
])
def test_demo_refuses_settings_it_cannot_run_with_before_starting_anything(extra, needle, capsys):
    _one_line(*_cli(capsys, "demo", *extra), needle)


@pytest.mark.parametrize("extra,needle", [
    (["--streams", "abc"], "bench --streams"), (["--streams", "-5"], "bench --streams"),
    (["--processes", "x"], "bench --processes"), (["--processes", "0"], "bench --processes"),
])
def test_bench_counts_are_whole_numbers(extra, needle, capsys):
    _one_line(*_cli(capsys, "bench", "--phases", "model", *extra), needle)


def test_evidence_of_a_hostile_stream_id_stays_under_the_root_without_warnings(tmp_path, audio_model,
                                                                              heldout_ambient):
    import warnings

    from streamad.evidence import EvidenceRecorder
    from streamad.model import AnomalyModel
    from streamad.windows.base import Window

    model = AnomalyModel.load(audio_model, "cpu")
    sig = load_audio(heldout_ambient[0], 16000)[: model.frontend.window]
    rec = EvidenceRecorder(tmp_path / "ev", model, audio=True)
    for sid in ("../../escaped", "evil\nFAKE\x1b[31m", "厨房"):
        alert = {"stream_id": sid, "alert_id": "a1", "window_start_iso": "2026-12-04T10:00:00Z", "score": 9.0,
                 "threshold": 5.0}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any warning (a missing glyph) fails the test
            rec.alert(sid, alert, Window(sid, 0.0, 1.0, sig))
        png = Path(alert["evidence"]["png"]).resolve()
        assert png.is_file() and png.parent.parent == (tmp_path / "ev").resolve()
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()
