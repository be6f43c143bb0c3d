"""The daemon as a real process against the real embedded broker, on real recordings."""
from __future__ import annotations

import hashlib
import signal

import numpy as np
import pytest

from streamad.alerts import AlertRule
from streamad.io.deadletter import dead_letter_id
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K
from tests.conftest import BABYCRY, GLASS

SR = 16000
TS0 = 1_800_000_000.0  # on the 0.5 s grid

pytestmark = pytest.mark.broker


def _setup(broker, tmp_path, unique, model, **kafka_extra):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", model, **kafka_extra)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    return topic, cfg


def _event_stream(heldout, n_files=3, ebr=6.0):
    glass = load_audio(sorted(GLASS.glob("*.wav"))[0], SR)
    cry = load_audio(sorted(BABYCRY.rglob("*.wav"))[0], SR)
    sigs, events = [], []
    for j, f in enumerate(heldout[:n_files]):
        amb = load_audio(f, SR)
        ev = glass if j % 2 == 0 else cry
        mixed, (a, b) = K.event_signal(amb, ev, SR, 4.0, ebr)
        off = j * len(amb) / SR
        sigs.append(mixed)
        events.append((TS0 + off + a, TS0 + off + b))
    return np.concatenate(sigs), events


def test_events_alert_and_pure_ambient_does_not(broker, tmp_path, unique, audio_model, heldout_ambient):
    topic, cfg = _setup(broker, tmp_path, unique, audio_model)
    ev_sig, events = _event_stream(heldout_ambient)
    amb_sig = np.concatenate([load_audio(f, SR) for f in heldout_ambient[3:6]])
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.produce_audio(broker.bootstrap, topic, "lobby", ev_sig, SR, TS0)
        K.produce_audio(broker.bootstrap, topic, "quiet-room", amb_sig, SR, TS0)
        n_expected = len(K.expected_keys("lobby", len(ev_sig), SR, TS0, SR, SR // 2)) + \
            len(K.expected_keys("quiet-room", len(amb_sig), SR, TS0, SR, SR // 2))
        K.wait_for(lambda: len(K.scored(slog)) >= n_expected, proc=proc, log=log)
        assert K.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    alerts = K.alert_records(broker.bootstrap, f"{topic}-alerts")
    closed = {c["alert_id"]: c for c in K.alert_records(broker.bootstrap, f"{topic}-alerts", "event_closed")}
    lobby = [a for a in alerts if a["stream_id"] == "lobby"]
    quiet = [a for a in alerts if a["stream_id"] == "quiet-room"]
    assert quiet == [], f"false alerts on pure ambient: {[(a['window_start'] - TS0, a['score']) for a in quiet]}"
    for a, b in events:  # every inserted event raised an alert overlapping it
        assert any(al["window_start"] < b and al["window_end"] > a for al in lobby), (a - TS0, lobby)
    assert len(lobby) <= len(events) + 1
    al = lobby[0]
    assert set(al) >= {"alert_id", "stream_id", "window_start", "window_end", "window_start_iso", "score",
                       "threshold", "model", "components", "sources", "detected_at"}
    assert al["score"] > al["threshold"] and al["sources"][0]["topic"] == topic
    # every event closed (the stream went on past its cooldown): one record per alert, paired by id
    assert set(closed) == {a["alert_id"] for a in lobby}
    for a in lobby:
        c = closed[a["alert_id"]]
        assert c["event_start"] == a["window_start"] and c["event_end"] >= a["window_end"]
        assert c["duration_s"] == pytest.approx(c["event_end"] - c["event_start"])
        assert c["windows_over_threshold"] >= 1 and c["peak_score"] >= a["score"] > c["threshold"]


def test_malformed_chunk_goes_to_dead_letter_and_daemon_goes_on(broker, tmp_path, unique, audio_model,
                                                               heldout_ambient):
    topic, cfg = _setup(broker, tmp_path, unique, audio_model)
    sig = load_audio(heldout_ambient[0], SR)
    bad = {30: (b"mic", b"\x01\x02\x03", [("sample_rate", b"16000"), ("dtype", b"int16"), ("channels", b"1"),
                                          ("timestamp", b"1.0"), ("trace-id", b"t-30")]),
           31: (b"mic-b", b"\0\0", [("dtype", b"int16"), ("trace-id", b"t-31")])}
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.produce_audio(broker.bootstrap, topic, "mic", sig, SR, TS0, inject=bad)
        keys = K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2)
        K.stop_when_scored(proc, slog, log, keys)
    finally:
        if proc.poll() is None:
            proc.kill()
    dlq = K.read_topic(broker.bootstrap, f"{topic}-dlq")
    assert len(dlq) == 2
    sources = {r.value: r for r in K.read_topic(broker.bootstrap, topic) if r.value in (bad[30][1], bad[31][1])}
    for d in dlq:
        src = sources[d.value]  # the original payload is kept unchanged ...
        k, v, h = bad[30] if d.value == bad[30][1] else bad[31]
        assert d.key == src.key == k  # ... with its key ...
        assert d.headers[:len(h)] == [(name, val) for name, val in h]  # ... its own headers, in order ...
        extra = dict(d.headers[len(h):])
        assert set(extra) == {"dlq_reason", "dlq_source", "dlq_id"}  # ... plus the reason, the exact source
        assert extra["dlq_source"].decode() == f"{topic}/{src.partition}/{src.offset}"
        assert extra["dlq_id"].decode() == dead_letter_id(extra["dlq_source"].decode(), src.value)  # de-dup key
    reasons = {d.key: dict(d.headers)["dlq_reason"].decode() for d in dlq}
    assert "whole number" in reasons[b"mic"] and reasons[b"mic-b"] == "missing header 'sample_rate'"


def test_sigkill_restart_scores_every_window_and_loses_no_alert(broker, tmp_path, unique, audio_model,
                                                                heldout_ambient, monkeypatch):
    # small polls so that the kill lands mid-stream
    topic, cfg = _setup(broker, tmp_path, unique, audio_model, max_poll_records=5)
    sig, events = _event_stream(heldout_ambient, n_files=4)
    keys = K.expected_keys("door", len(sig), SR, TS0, SR, SR // 2)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    K.produce_audio(broker.bootstrap, topic, "door", sig, SR, TS0)
    # the first run scores slowly (batches of at most 2 windows, 50 ms each: the scoring worker's
    # test hook), so that the kill lands mid-stream however fast the poll loop reads
    slow = K.write_config(tmp_path / "slow.yaml", topic, f"g-{unique}", audio_model, worker={"max_batch": 2},
                          max_poll_records=5)
    monkeypatch.setenv("STREAMAD_TEST_SCORE_DELAY_S", "0.05")
    proc = K.start_daemon(slow, broker.bootstrap, slog, log)
    monkeypatch.delenv("STREAMAD_TEST_SCORE_DELAY_S")
    try:
        K.wait_for(lambda: len(K.scored(slog)) >= 12, proc=proc, log=log, every=0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        first_run = {s["key"] for s in K.scored(slog)}
        assert first_run < keys, "the kill should land before the end of the stream"
        proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
        K.stop_when_scored(proc, slog, log, keys)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert {s["key"] for s in K.scored(slog)} >= keys  # every window scored at least once
    # the alerts an uninterrupted run makes, computed offline with the same model and rule
    model = AnomalyModel.load(audio_model, device="cpu")
    W = frame_windows(sig, SR, SR // 2)
    scores, _ = model.score(W)
    starts = TS0 + np.arange(len(W)) * 0.5
    opens = AlertRule.for_model(model).decide(scores, starts, starts + 1.0).opens
    p0 = int(TS0 * SR)
    want = {hashlib.sha1(f"door@{p0 + i * (SR // 2)}|{model.version}".encode()).hexdigest()[:20]
            for i in np.nonzero(opens)[0]}
    assert len(want) >= len(events)
    got = K.alert_records(broker.bootstrap, f"{topic}-alerts")
    assert {a["alert_id"] for a in got} == want  # none lost, no event alerted twice under a new id


def test_rebalance_to_a_second_worker_keeps_streams_apart(broker, tmp_path, unique, audio_model, heldout_ambient):
    """A second daemon joins mid-stream: partitions move, every window is still scored at least once,
    and every score equals the offline score of that stream's own window (no buffer mixing)."""
    topic, cfg = _setup(broker, tmp_path, unique, audio_model, max_poll_records=4)
    sigs = {f"mic-{i}": np.concatenate([load_audio(heldout_ambient[(i + j) % len(heldout_ambient)], SR)
                                        for j in range(2)]) for i in range(4)}
    half = 10 * SR  # first 10 s of every stream before the second worker joins, the rest after
    for sid, sig in sigs.items():
        K.produce_audio(broker.bootstrap, topic, sid, sig[:half], SR, TS0)
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    dlogs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [K.start_daemon(cfg, broker.bootstrap, logs[0], dlogs[0])]
    try:
        K.wait_for(lambda: len(K.scored(logs[0])) >= 10, proc=procs[0], log=dlogs[0], every=0.05)
        procs.append(K.start_daemon(cfg, broker.bootstrap, logs[1], dlogs[1]))
        K.wait_for(lambda: "partitions assigned" in dlogs[1].read_text() and
                   "partitions revoked" in dlogs[0].read_text(), proc=procs[1], log=dlogs[1])
        for sid, sig in sigs.items():
            K.produce_audio(broker.bootstrap, topic, sid, sig[half:], SR, TS0 + half / SR)
        want = set().union(*(K.expected_keys(s, len(x), SR, TS0, SR, SR // 2) for s, x in sigs.items()))
        K.wait_for(lambda: {s["key"] for lg in logs for s in K.scored(lg)} >= want, timeout=120, log=dlogs[1])
        assert [K.stop(p) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert K.scored(logs[1]), "the second worker never got a partition"
    model = AnomalyModel.load(audio_model, device="cpu")
    offline = {}
    p0 = int(TS0 * SR)
    for sid, sig in sigs.items():
        wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)  # int16 on the wire
        sc, _ = model.score(frame_windows(wire, SR, SR // 2))
        offline.update({f"{sid}@{p0 + i * (SR // 2)}": s for i, s in enumerate(sc)})
    for lg in logs:
        for s in K.scored(lg):
            assert s["score"] == pytest.approx(offline[s["key"]], rel=1e-3, abs=1e-3), s["key"]
