"""Hot model reload on SIGHUP (issue 9, "also build"), on the real broker with real recordings.

The new model takes over at a window boundary: every window is scored exactly once, those cut
before the reload by the old model, those after by the new one (their offline scores). A corrupt
model is refused with one line and the running one goes on. On cf3559e SIGHUP ended the daemon.
"""
from __future__ import annotations

import json
import shutil
import signal

import numpy as np
import pytest
import torch
import yaml

from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K
from tests import robust_util as R

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _offline(model, sig):
    wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)
    sc, _ = model.score(frame_windows(wire, SR, SR // 2))
    return {f"mic@{int(TS0 * SR) + i * (SR // 2)}": float(s) for i, s in enumerate(sc)}


def _point_config(cfg, model_dir):
    d = yaml.safe_load(cfg.read_text())
    d["model"]["path"] = str(model_dir)
    cfg.write_text(yaml.safe_dump(d))


def test_sighup_swaps_the_model_at_a_window_boundary_and_refuses_a_corrupt_one(broker, tmp_path, unique,
                                                                                audio_model, heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    old = AnomalyModel.load(audio_model, device="cpu")
    new = AnomalyModel.load(audio_model, device="cpu")  # a retrained model stands in: the decoder nudged
    with torch.no_grad():
        for p in new.detector.nets["gd"].parameters():
            p.mul_(1.05)
    new.save(tmp_path / "model-b")
    corrupt = tmp_path / "model-c"
    shutil.copytree(tmp_path / "model-b", corrupt)
    (corrupt / "weights.pt").write_bytes((corrupt / "weights.pt").read_bytes()[:-100] + b"\0" * 100)
    sig = np.concatenate([load_audio(f, SR) for f in heldout_ambient[:3]])[: 25 * SR]
    a_scores, b_scores = _offline(old, sig), _offline(AnomalyModel.load(tmp_path / "model-b", device="cpu"), sig)
    assert np.mean([abs(a_scores[k] - b_scores[k]) > 0.05 * abs(a_scores[k]) + 1e-3 for k in a_scores]) > 0.9
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        cut1, cut2 = 10 * SR, 18 * SR
        K.produce_audio(broker.bootstrap, topic, "mic", sig[:cut1], SR, TS0)
        first = K.expected_keys("mic", cut1, SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= first, proc=proc, log=log, timeout=120)
        _point_config(cfg, tmp_path / "model-b")
        proc.send_signal(signal.SIGHUP)
        R.wait_line(log, "model reloaded", proc=proc, timeout=60)
        K.produce_audio(broker.bootstrap, topic, "mic", sig[cut1:cut2], SR, TS0 + cut1 / SR)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= K.expected_keys("mic", cut2, SR, TS0, SR, SR // 2),
                   proc=proc, log=log, timeout=120)
        _point_config(cfg, corrupt)
        proc.send_signal(signal.SIGHUP)
        R.wait_line(log, "model reload refused", proc=proc, timeout=60)
        K.produce_audio(broker.bootstrap, topic, "mic", sig[cut2:], SR, TS0 + cut2 / SR)
        every = K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= every, proc=proc, log=log, timeout=120)
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    scored = K.scored(slog)
    keys = [s["key"] for s in scored]
    assert len(keys) == len(set(keys)) == len(every)  # none lost, none scored twice
    for s in scored:  # before the reload the old model's offline score, after it the new one's
        want = a_scores[s["key"]] if s["key"] in first else b_scores[s["key"]]
        assert s["score"] == pytest.approx(want, rel=1e-3, abs=1e-3), s["key"]
    text = log.read_text()
    assert text.count("model reloaded") == 1 and text.count("model reload refused") == 1
    refused = [x for x in text.splitlines() if "model reload refused" in x][0]
    assert "weights do not match their recorded hash" in refused
    assert f"{json.loads((tmp_path / 'model-b' / 'model.json').read_text())['model_version']} keeps running" in refused
    print(f"\nreload: windows {len(every)}, scored once each {len(keys)}, by the old model {len(first)}, "
          f"by the new {len(keys) - len(first)}, twice 0, missing 0")


def test_a_model_with_another_context_cannot_take_over_the_running_streams():
    """Same samples per window, hop and rate, but another split of them into context and span: the
    running streams' buffers stamp each window's time with the old context, so the reload is refused
    (as one of another window or hop is)."""
    from types import SimpleNamespace

    from streamad.config import AudioConfig
    from streamad.daemon.reload import incompatibility
    from streamad.windows.audio import LogMelFrontend

    def model(context_s, window_s):
        fe = LogMelFrontend(AudioConfig(context_s=context_s, window_s=window_s))
        return SimpleNamespace(cfg=SimpleNamespace(kind="audio"), frontend=fe)

    ctx, wide = model(0.5, 1.0), model(0.0, 1.5)
    assert (ctx.frontend.window, ctx.frontend.hop) == (wide.frontend.window, wide.frontend.hop) == (24000, 8000)
    hint = " (the audio it hears before each window); restart the daemon to switch"
    assert incompatibility(ctx, wide) == "context (samples) 0 differs from the running model's 8000" + hint
    assert incompatibility(wide, ctx) == "context (samples) 8000 differs from the running model's 0" + hint
    assert incompatibility(ctx, model(0.5, 1.0)) is None
    # an escalated model (0.5 s of context + the same 1 s window) against the mixtures' (no context): its
    # windows are longer too, and the message names the context, not the length
    assert incompatibility(model(0.0, 1.0), ctx) == "context (samples) 8000 differs from the running model's 0" + hint
