"""The commit rule and the dead-letter contract, on the real broker and real recordings.

Each test here breaks if one piece of the at-least-once machinery is removed: the open-event
hold, the acknowledgement check (exit 1), idle-stream eviction, and the exact dead-letter copy.
"""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from streamad.alerts import AlertRule, alert_id
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K
from tests.conftest import BABYCRY

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _setup(broker, tmp_path, unique, model, worker=None, **kafka_extra):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", model, worker=worker, **kafka_extra)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    return topic, cfg


def _offline_alert_ids(model_dir, stream, sig):
    model = AnomalyModel.load(model_dir, device="cpu")
    wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)  # int16 on the wire
    scores, _ = model.score(frame_windows(wire, SR, SR // 2))
    starts = TS0 + np.arange(len(scores)) * 0.5
    d = AlertRule.for_model(model).decide(scores, starts, starts + 1.0)
    p0 = int(TS0 * SR)
    return d, [alert_id(f"{stream}@{p0 + i * (SR // 2)}", model.version) for i in np.flatnonzero(d.opens)]


def _long_event_stream(heldout):
    """Ambient with two loud cries back to back from 3 s: one event lasting about 6 s."""
    amb = np.concatenate([load_audio(f, SR) for f in heldout[:2]])
    cries = sorted(BABYCRY.rglob("*.wav"))
    sig = amb
    for j, at in enumerate((3.0, 5.9)):
        sig, _ = K.event_signal(sig, load_audio(cries[j], SR), SR, at, 10.0)
    return sig


def test_kill_inside_an_open_event_keeps_one_alert_id(broker, tmp_path, unique, audio_model, heldout_ambient):
    topic, cfg = _setup(broker, tmp_path, unique, audio_model)
    sig = _long_event_stream(heldout_ambient)
    d, want = _offline_alert_ids(audio_model, "hall", sig)
    cut = int(6.0 * SR)  # the stream stops inside the event; the daemon is killed there
    ev = d.events[0]
    assert ev.first * 0.5 < 6.0 - 1.0 and ev.last * 0.5 > 6.0, "precondition: one event spans the cut"
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    K.produce_audio(broker.bootstrap, topic, "hall", sig[:cut], SR, TS0)
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        first = K.expected_keys("hall", cut, SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= first, proc=proc, log=log)
        K.wait_for(lambda: len(K.read_topic(broker.bootstrap, f"{topic}-alerts", idle_s=0.5)) >= 1)
        time.sleep(1.0)  # the poll that scored the last windows has committed by now
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
        K.produce_audio(broker.bootstrap, topic, "hall", sig[cut:], SR, TS0 + cut / SR)
        keys = K.expected_keys("hall", len(sig), SR, TS0, SR, SR // 2)
        K.stop_when_scored(proc, slog, log, keys)
    finally:
        if proc.poll() is None:
            proc.kill()
    alerts = K.alert_records(broker.bootstrap, f"{topic}-alerts")
    assert {a["alert_id"] for a in alerts} == set(want)  # the event open at the kill: still one alert id
    closed = K.alert_records(broker.bootstrap, f"{topic}-alerts", "event_closed")
    assert {c["alert_id"] for c in closed} == set(want) and len(closed) == len(want)  # and closed once


def test_unacknowledged_alert_exits_1_and_a_restart_publishes_it(broker, tmp_path, unique, audio_model,
                                                                  heldout_ambient):
    # alerts cannot be delivered: the producer refuses records above 300 bytes
    topic, cfg = _setup(broker, tmp_path, unique, audio_model, client={"max_request_size": 300})
    sig = _long_event_stream(heldout_ambient)
    _, want = _offline_alert_ids(audio_model, "hall", sig)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    K.produce_audio(broker.bootstrap, topic, "hall", sig, SR, TS0)
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        assert proc.wait(timeout=90) == 1
        assert "stopping without committing" in log.read_text()
        assert K.read_topic(broker.bootstrap, f"{topic}-alerts", idle_s=0.5) == []
        # the same group, deliverable now: the restart re-reads from the last commit and alerts
        good = K.write_config(tmp_path / "good.yaml", topic, f"g-{unique}", audio_model)
        slog = tmp_path / "scores-2.jsonl"
        proc = K.start_daemon(good, broker.bootstrap, slog, log)
        keys = K.expected_keys("hall", len(sig), SR, TS0, SR, SR // 2)
        K.stop_when_scored(proc, slog, log, keys)
    finally:
        if proc.poll() is None:
            proc.kill()
    got = {a["alert_id"] for a in K.alert_records(broker.bootstrap, f"{topic}-alerts")}
    assert got == set(want) and want


def test_idle_stream_is_evicted_and_its_records_committed(broker, tmp_path, unique, audio_model, heldout_ambient):
    topic, cfg = _setup(broker, tmp_path, unique, audio_model, worker={"idle_stream_s": 1.0})
    sig = load_audio(heldout_ambient[0], SR)[: int(1.7 * SR)]  # 2 windows, then a partial one
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    n = K.produce_audio(broker.bootstrap, topic, "mic", sig, SR, TS0)
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.wait_for(lambda: len(K.scored(slog)) >= 2, proc=proc, log=log)
        K.wait_for(lambda: "evicted 1 idle stream" in log.read_text(), proc=proc, log=log, timeout=30)
        # every record is committed: nothing is held for the partial window of a forgotten stream
        K.wait_for(lambda: sum(v or 0 for v in K.committed(broker.bootstrap, f"g-{unique}", topic).values()) == n,
                   timeout=20)
        assert K.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("interval", [0.0, 3600.0])
def test_commits_are_spaced_by_commit_interval_and_a_stop_commits(broker, tmp_path, unique, audio_model,
                                                                  heldout_ambient, interval):
    """``kafka.commit_interval_s``: 0 commits after every scored batch; 3600 commits the first batch
    (nothing was committed before it) and then nothing until the stop, which commits what was decided."""
    topic, cfg = _setup(broker, tmp_path, unique, audio_model, commit_interval_s=interval)
    sig = load_audio(heldout_ambient[0], SR)[: 6 * SR]
    half = 3 * SR
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"

    def total():
        return sum(v or 0 for v in K.committed(broker.bootstrap, f"g-{unique}", topic).values())

    K.produce_audio(broker.bootstrap, topic, "mic", sig[:half], SR, TS0)
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= K.expected_keys("mic", half, SR, TS0, SR, SR // 2),
                   proc=proc, log=log)
        K.wait_for(lambda: total() > 0, proc=proc, log=log, timeout=20)
        first = total()
        K.produce_audio(broker.bootstrap, topic, "mic", sig[half:], SR, TS0 + half / SR)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2),
                   proc=proc, log=log)
        if interval == 0:
            K.wait_for(lambda: total() > first, proc=proc, log=log, timeout=20)
        else:
            time.sleep(2.0)  # several poll-loop iterations after the second part was decided
            assert total() == first
        assert K.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert total() > first  # the stop commits every decided window's records
