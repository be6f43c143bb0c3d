"""``worker.scorer: process``: the model runs in a child process (daemon/scorer_proc.py). Scores must
be exactly those of the worker thread; a model the child cannot load the same is scored in the
thread; a dead child is an error, not a hang; and the daemon on the real broker scores every window
as offline with it."""
from __future__ import annotations

import logging
import os
import signal

import numpy as np
import pytest

from streamad.daemon.scorer_proc import ProcessScorer, ScorerError
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import Window, frame_windows
from tests import kafka_util as K

SR = 16000
TS0 = 1_800_000_000.0


def _windows(files, n=40) -> list[Window]:
    sig = np.concatenate([load_audio(f, SR) for f in files[:2]])
    data = frame_windows(sig, SR, SR // 2)[:n]
    return [Window("mic", i * 0.5, i * 0.5 + 1, d, {}, key=f"mic@{i}") for i, d in enumerate(data)]


def test_child_scores_exactly_as_the_thread_and_falls_back_for_a_model_it_cannot_load(
        audio_model, heldout_ambient, caplog):
    model = AnomalyModel.load(audio_model, device="cpu")
    wins = _windows(heldout_ambient)
    want, want_comps = model.score_windows(wins, 16)
    s = ProcessScorer(threads=1)
    try:
        assert s.prepare("p", model)
        got, comps = s.score("p", model, wins, 16, "float32")
        np.testing.assert_array_equal(got, want)  # same model file, same torch, same batches
        assert comps.keys() == want_comps.keys()
        for k in comps:
            np.testing.assert_array_equal(comps[k], want_comps[k])
        got2, _ = s.score("p", model, wins[:7], 16, "float32")  # the shared block is reused
        np.testing.assert_array_equal(got2, want[:7])
        # a model whose directory no longer holds it (here: one built in memory) is scored in the thread
        other = AnomalyModel.load(audio_model, device="cpu")
        other.source = None
        with caplog.at_level(logging.WARNING, logger="streamad.daemon"):
            assert not s.prepare("p", other)
            got3, _ = s.score("p", other, wins, 16, "float32")
        assert "cannot be loaded there" in caplog.text
        np.testing.assert_array_equal(got3, want)
        # a dead child: an error naming it, at once
        os.kill(s.pid, signal.SIGKILL)
        with pytest.raises(ScorerError, match="died"):
            s.score("q", model, wins, 16, "float32")
    finally:
        s.close()


@pytest.mark.broker
def test_daemon_with_a_scoring_process_scores_every_window_as_offline(broker, tmp_path, unique, audio_model,
                                                                      heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model,
                         worker={"scorer": "process", "max_batch": 32})
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    sigs = {f"mic-{i}": np.concatenate([load_audio(f, SR) for f in heldout_ambient[i:i + 2]])[: 20 * SR]
            for i in range(3)}
    for sid, sig in sigs.items():
        K.produce_audio(broker.bootstrap, topic, sid, sig, SR, TS0)
    want = set().union(*(K.expected_keys(s, len(x), SR, TS0, SR, SR // 2) for s, x in sigs.items()))
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.stop_when_scored(proc, slog, log, want)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "scoring in a child process" in log.read_text()
    rows = K.scored(slog)
    assert len(rows) == len(want) == len({r["key"] for r in rows})
    model = AnomalyModel.load(audio_model, device="cpu")
    p0 = int(TS0 * SR)
    for sid, sig in sigs.items():
        wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)
        sc, _ = model.score(frame_windows(wire, SR, SR // 2))
        offline = {f"{sid}@{p0 + i * (SR // 2)}": s for i, s in enumerate(sc)}
        for r in rows:
            if r["stream_id"] == sid:
                assert r["score"] == pytest.approx(offline[r["key"]], rel=1e-4, abs=1e-4), r["key"]
