"""Issue 9, item 2: stream time cannot be used to blind a stream (real broker, real recordings).

On cf3559e one chunk stamped far in the future moved the stream's clock, and everything the real
producer sent afterwards was dropped as 'duplicate' (a glass break missed, nothing dead-lettered,
the same after a restart); a clock stepping back an hour dropped the rest of its stream silently;
float32 samples of 1e30 gave NaN scores with no alert, no dead letter, no log. Now the lone chunk
is dead-lettered and the stream never moves, the step back starts a new segment with one log
line, and the absurd samples are dead-lettered at decode.
"""
from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from streamad.alerts import AlertRule, alert_id
from streamad.io.codecs import encode_audio
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K
from tests import robust_util as R
from tests.conftest import GLASS

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _offline(model, sid, sig, ts0):
    wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)
    scores, _ = model.score(frame_windows(wire, SR, SR // 2))
    p0 = int(round(ts0 * SR))
    keys = [f"{sid}@{p0 + i * (SR // 2)}" for i in range(len(scores))]
    starts = ts0 + np.arange(len(scores)) * 0.5
    opens = AlertRule.for_model(model).decide(scores, starts, starts + 1.0).opens
    return dict(zip(keys, scores.tolist())), {alert_id(keys[i], model.version) for i in np.flatnonzero(opens)}


def test_forged_timestamps_and_clock_steps_do_not_blind_a_stream(broker, tmp_path, unique, audio_model,
                                                                 heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    model = AnomalyModel.load(audio_model, device="cpu")
    amb = np.concatenate([load_audio(f, SR) for f in heldout_ambient[:2]])
    door, _ = K.event_signal(amb, load_audio(sorted(GLASS.glob("*.wav"))[0], SR), SR, 4.0, 6.0)
    want_door, want_alerts = _offline(model, "door", door, TS0)
    assert want_alerts, "precondition: the glass break alerts offline"
    clock = load_audio(heldout_ambient[2], SR)
    half = 5 * SR  # the clock's second half is stamped an hour earlier than its first half
    want_clock = {**_offline(model, "clock", clock[:half], TS0 + 7200)[0],
                  **_offline(model, "clock", clock[half:], TS0 + 3600 + 5)[0]}
    forged = encode_audio("door", np.full(SR // 10, 0.5, np.float32), SR, TS0 + 1e6)  # 11 days ahead
    hot = encode_audio("hot", np.full(SR, 1e30, np.float32), SR, TS0, "float32")
    door_chunks = K.audio_chunks("door", door, TS0)
    part1 = door_chunks[:20] + [forged] + door_chunks[20:25]
    part2 = door_chunks[25:] + K.audio_chunks("clock", clock[:half], TS0 + 7200) + \
        K.audio_chunks("clock", clock[half:], TS0 + 3600 + 5) + [hot]
    prod = R.fast_producer(broker.bootstrap)
    meta = R.send_all(prod, topic, part1, partition=0)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:  # killed while the forged chunk is the newest thing the stream has seen; then restarted
        K.wait_for(lambda: len(K.scored(slog)) >= 3, proc=proc, log=log, timeout=120)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
        R.send_all(prod, topic, part2, partition=0)
        prod.close()
        want = set(want_door) | set(want_clock)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= want, proc=proc, log=log, timeout=180)
        K.wait_for(lambda: len(R.dead_letters(broker.bootstrap, f"{topic}-dlq", 0.5)) >= 2, proc=proc, log=log)
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    offline = {**want_door, **want_clock}
    for s in K.scored(slog):  # every score is the window's offline score: nothing mixed in
        assert s["score"] == pytest.approx(offline[s["key"]], rel=1e-3, abs=1e-3), s["key"]
    alerts = {json.loads(r.value)["alert_id"] for r in K.read_topic(broker.bootstrap, f"{topic}-alerts")}
    assert want_alerts <= alerts  # the glass break after the forged chunk was not missed
    dlq = R.dead_letters(broker.bootstrap, f"{topic}-dlq")
    forged_src = f"{topic}/0/{meta[20].offset}"
    forged_dl = [d for d in dlq if d["headers"]["dlq_source"].decode() == forged_src]
    assert forged_dl and all(b"does not continue stream 'door'" in d["headers"]["dlq_reason"] for d in forged_dl)
    assert len({d["headers"]["dlq_id"] for d in forged_dl}) == 1  # re-sent after the kill: the same id
    hot_dl = [d for d in dlq if d["key"] == b"hot"]
    assert len(hot_dl) == 1 and b"float32 sample out of range" in hot_dl[0]["headers"]["dlq_reason"]
    text = log.read_text()
    assert text.count("stream 'clock': its clock stepped back") == 1
    last = R.stats_lines(log)[-1]
    assert last["dropped_samples"] >= SR // 10 and last["nonfinite_scores"] == 0 and last["duplicates"] == 0
    keys = [s["key"] for s in K.scored(slog)]
    print(f"\nstream time: records sent {len(part1) + len(part2)}, dead-lettered {len(dlq)} (the forged chunk "
          f"{len(forged_dl)}x with one id, float32 1e30 1x), windows scored {len(keys)} ({len(keys) - len(set(keys))} "
          f"twice after the kill) of {len(offline)}, missing 0, alerts {len(alerts)} (offline {len(want_alerts)}), "
          f"dropped samples {last['dropped_samples']}")
