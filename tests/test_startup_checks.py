"""Issue 9, item 6: a bad config or model file stops ``streamad run`` at start-up with exit code 2
and one line naming the key or file, before the first window (real broker, data waiting).

On cf3559e each of these was accepted and failed later or silently: ``idle_stream_s: -1`` scored
no window, a dead-letter topic equal to the input topic turned one bad record into thousands of
dead letters, negative timeouts and bad topic names or bootstrap strings gave tracebacks, and
model files with a string / NaN / -inf threshold, impossible k-of-n, unknown score weights, a zero
scale, tensors of the wrong shape or weights that do not match their hash loaded.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from streamad.cli import main
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from tests import kafka_util as K

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker

CONFIG_CASES = [  # (name, change to the config, what the error line starts with)
    ("idle-negative", {"worker": {"idle_stream_s": -1}}, "worker.idle_stream_s: must be > 0"),
    ("dlq-is-input", {"kafka": {"dead_letter_topic": "@input"}}, "kafka.dead_letter_topic: "),
    ("alerts-is-input", {"kafka": {"alert_topic": "@input"}}, "kafka.alert_topic: "),
    ("unknown-client-option", {"kafka": {"client": {"sasl_pasword": "x"}}}, "kafka.client.sasl_pasword: "),
    ("negative-client-timeout", {"kafka": {"client": {"request_timeout_ms": -5}}},
     "kafka.client.request_timeout_ms: must be >= 0"),
    ("negative-poll-timeout", {"kafka": {"poll_timeout_ms": -200}}, "kafka.poll_timeout_ms: must be > 0"),
    ("negative-session-timeout", {"kafka": {"session_timeout_ms": -1}}, "kafka.session_timeout_ms: must be > 0"),
    ("negative-broker-timeout", {"kafka": {"broker_timeout_s": -3}}, "kafka.broker_timeout_s: must be > 0"),
    ("bad-topic-name", {"kafka": {"input_topics": ["audio in!"]}}, "kafka.input_topics[0]: invalid topic name"),
    ("bad-bootstrap", {"kafka": {"bootstrap_servers": "localhost"}}, "kafka.bootstrap_servers: expected host:port"),
    ("nan-tolerance", {"audio": {"gap_tolerance_s": float("nan")}}, "audio.gap_tolerance_s: expected a finite"),
    ("max-streams-zero", {"worker": {"max_streams": 0}}, "worker.max_streams: must be > 0"),
]


def _stamp(d, meta):
    """Write model.json with the version its content gives, so that only the change under test is wrong."""
    from streamad.model_checks import version_of

    meta["model_version"] = version_of(json.loads(json.dumps(meta)))
    (d / "model.json").write_text(json.dumps(meta))


def _rehash(d):
    """Record the weights' new hash, so that only the change under test is wrong."""
    h = hashlib.sha256((d / "weights.pt").read_bytes()).hexdigest()[:12]
    meta = json.loads((d / "model.json").read_text())
    meta["weights_sha256_12"] = h
    _stamp(d, meta)


def _tensor(name, value):
    def f(d):
        state = torch.load(d / "weights.pt", weights_only=True)
        key = next(k for k in state if k.startswith(name))
        state[key] = value(state[key])
        torch.save(state, d / "weights.pt")
        _rehash(d)
    return f


def _cal(**kw):
    def f(d):
        meta = json.loads((d / "model.json").read_text())
        for k, v in kw.items():
            if k in ("weights", "scale"):
                meta["calibration"][k].update(v)
            else:
                meta["calibration"][k] = v
        _stamp(d, meta)
    return f


def _weights_changed(d):
    state = torch.load(d / "weights.pt", weights_only=True)
    state["frontend.band_mean"] = state["frontend.band_mean"] + 1.0
    torch.save(state, d / "weights.pt")


MODEL_CASES = [  # (name, change to the model directory, what the error says after the file name)
    ("threshold-string", _cal(threshold="high"), "calibration.threshold: must be a finite number"),
    ("threshold-nan", _cal(threshold=float("nan")), "calibration.threshold: must be a finite number"),
    ("threshold-minus-inf", _cal(threshold=float("-inf")), "calibration.threshold: must be a finite number"),
    ("min-windows-0", _cal(min_windows=0), "calibration.min_windows: must be an integer >= 1"),
    ("min-above-of", _cal(min_windows=3, of_windows=2), "calibration.min_windows: must be <= calibration.of_windows"),
    ("unknown-weight", _cal(weights={"loudness": 1.0}), "calibration.weights.loudness: unknown score component"),
    ("zero-scale", _cal(scale={"irec": 0.0}), "calibration.scale.irec: must be > 0"),
    ("wrong-shape-frontend", _tensor("frontend.band_mean", lambda t: t[:5]), "log-mel front end state"),
    ("wrong-shape-mixture", _tensor("detector.mu", lambda t: t[:, :3]), "mixture parameter 'mu'"),
    ("wrong-shape-net", _tensor("detector.ge.", lambda t: torch.zeros(3)), "model files do not match"),
    ("weights-not-their-hash", _weights_changed, "weights do not match their recorded hash"),
]


@pytest.fixture(scope="module")
def waiting_topic(broker, audio_model, heldout_ambient):
    """A topic with 3 s of audio waiting: a daemon that started would score it."""
    import uuid

    topic = f"audio-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    K.produce_audio(broker.bootstrap, topic, "mic", load_audio(heldout_ambient[0], SR)[: 3 * SR], SR, TS0)
    return topic


def _config(tmp_path, topic, model, change):
    d = yaml.safe_load(K.write_config(tmp_path / "base.yaml", topic, f"g-{topic}", model).read_text())
    for section, values in change.items():
        for k, v in values.items():
            d.setdefault(section, {})[k] = topic if v == "@input" else v
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def _run_in_process(capsys, cfg, slog, *extra):
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        rc = main(["run", "--config", str(cfg), "--score-log", str(slog), "--device", "cpu", "--max-seconds", "20",
                   *extra])
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    return rc, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("name,change,start", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_exits_2_before_the_first_window(name, change, start, broker, waiting_topic, audio_model,
                                                    tmp_path, capsys):
    cfg = _config(tmp_path, waiting_topic, audio_model, change)
    extra = [] if "bootstrap_servers" in change.get("kafka", {}) else ["--bootstrap", broker.bootstrap]
    rc, err = _run_in_process(capsys, cfg, tmp_path / "scores.jsonl", *extra)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"streamad: error: {start}"), err[0]
    assert not (tmp_path / "scores.jsonl").exists()


@pytest.mark.parametrize("name,change,says", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_exits_2_before_the_first_window(name, change, says, broker, waiting_topic, audio_model,
                                                   tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(audio_model, model)
    change(model)
    cfg = _config(tmp_path, waiting_topic, model, {})
    rc, err = _run_in_process(capsys, cfg, tmp_path / "scores.jsonl", "--bootstrap", broker.bootstrap)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"streamad: error: {model}") and says in err[0], err[0]
    assert not (tmp_path / "scores.jsonl").exists()


def test_the_real_command_line_exits_2_with_one_line(broker, waiting_topic, audio_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(audio_model, model)
    _cal(threshold=float("nan"))(model)
    for cfg in (_config(tmp_path, waiting_topic, audio_model, {"worker": {"idle_stream_s": -1}}),
                _config(tmp_path, waiting_topic, model, {})):
        r = subprocess.run([sys.executable, "-m", "streamad.cli", "run", "--config", str(cfg), "--bootstrap",
                            broker.bootstrap, "--max-seconds", "20", "--device", "cpu"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("streamad: error: ")
    assert np.isnan(json.loads((model / "model.json").read_text())["calibration"]["threshold"])


def test_a_recalibrated_model_is_a_new_version_and_a_hand_edited_threshold_is_refused(tmp_path):
    """model_version covers the calibration: the same weights with another threshold are another
    version (alert records and logs tell them apart); editing the threshold in model.json without
    retraining no longer matches the version and the model is refused with one line."""
    import numpy as np

    from streamad.config import from_dict
    from streamad.model import AnomalyModel, ModelFileError
    from streamad.train import Recording, train_model

    rng = np.random.default_rng(0)
    sig = (0.05 * rng.standard_normal(16000 * 8)).astype(np.float32)
    base = {"audio": {"n_mels": 64}, "model": {"detector": "frame_gmm", "params": {"k": 2, "iters": 5}},
            "train": {"calibration": "holdout", "threads": 1}}
    a = train_model(from_dict(base), [Recording("a", sig)], tmp_path / "a", show_progress=False)
    base["alerts"] = {"target_false_alerts_per_hour": 0.1}
    b = train_model(from_dict(base), [Recording("a", sig)], tmp_path / "b", show_progress=False)
    ma, mb = (json.loads((tmp_path / d / "model.json").read_text()) for d in ("a", "b"))
    assert ma["weights_sha256_12"] == mb["weights_sha256_12"] and a.threshold != b.threshold
    assert a.version != b.version and AnomalyModel.load(tmp_path / "b", "cpu").version == b.version
    mb["calibration"]["threshold"] = a.threshold
    (tmp_path / "b" / "model.json").write_text(json.dumps(mb))
    with pytest.raises(ModelFileError, match="model_version: .* does not match the detector, weights, config and calibration"):
        AnomalyModel.load(tmp_path / "b", "cpu")
    # a model file written before versions covered the calibration (version = detector + weights hash) still loads
    ma["model_version"] = f"{ma['detector']}-{ma['weights_sha256_12']}"
    (tmp_path / "a" / "model.json").write_text(json.dumps(ma))
    assert AnomalyModel.load(tmp_path / "a", "cpu").threshold == a.threshold
