"""Scale-out (issue 9, "also build"): three daemons in one group over a 6-partition topic with six
streams; one is SIGKILLed mid-stream; the other two take its partitions. Every window is scored
at least once and every alert the streams raise offline is published (real broker, recordings).
"""
from __future__ import annotations

import ast
import json
import re
import signal
import time

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
from tests.conftest import BABYCRY, GLASS

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _assigned(log):
    """The worker's current assignment from its log; None before the first one or while a
    rebalance is in flight (revoked logged after the last assignment)."""
    text = log.read_text()
    lines = re.findall(r"partitions assigned: (\[.*\])", text)
    if not lines or text.rfind("partitions revoked") > text.rfind("partitions assigned"):
        return None
    return ast.literal_eval(lines[-1])


def _survivors_own_all(logs, topic):
    """The survivors' assignments together are the whole topic (a rebalance can take more than
    one generation after a member dies, so this is waited for, not read once)."""
    now = [_assigned(lg) for lg in logs]
    return all(a is not None for a in now) and sorted(now[0] + now[1]) == [(topic, p) for p in range(6)]


def _streams(heldout):
    glass = load_audio(sorted(GLASS.glob("*.wav"))[0], SR)
    cry = load_audio(sorted(BABYCRY.rglob("*.wav"))[0], SR)
    out = {}
    for i in range(6):
        amb = load_audio(heldout[i % len(heldout)], SR)
        if i in (1, 4):
            amb, _ = K.event_signal(amb, glass if i == 1 else cry, SR, 6.0, 6.0)
        out[f"s{i}"] = amb
    return out


def _offline_alerts(model, sid, sig):
    wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)
    scores, _ = model.score(frame_windows(wire, SR, SR // 2))
    starts = TS0 + np.arange(len(scores)) * 0.5
    opens = AlertRule.for_model(model).decide(scores, starts, starts + 1.0).opens
    return {alert_id(f"{sid}@{int(TS0 * SR) + i * (SR // 2)}", model.version) for i in np.flatnonzero(opens)}


def test_three_workers_one_killed_every_window_and_alert(broker, tmp_path, unique, audio_model, heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model, max_poll_records=20)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 6)
    sigs = _streams(heldout_ambient)
    model = AnomalyModel.load(audio_model, device="cpu")
    want_alerts = set().union(*(_offline_alerts(model, sid, x) for sid, x in sigs.items()))
    assert want_alerts, "precondition: the event streams alert offline"
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    slogs = [tmp_path / f"w{i}.jsonl" for i in range(3)]
    procs = [K.start_daemon(cfg, broker.bootstrap, slogs[i], logs[i]) for i in range(3)]
    half = 5 * SR
    prod = R.fast_producer(broker.bootstrap)
    try:
        K.wait_for(lambda: all(_assigned(lg) is not None and len(_assigned(lg)) == 2 for lg in logs), timeout=180)
        for i, (sid, x) in enumerate(sigs.items()):
            R.send_all(prod, topic, [encode_audio(sid, x[j:j + SR // 10], SR, TS0 + j / SR)
                                     for j in range(0, half, SR // 10)], partition=i)
        first = set().union(*(K.expected_keys(sid, half, SR, TS0, SR, SR // 2) for sid in sigs))
        K.wait_for(lambda: {s["key"] for lg in slogs for s in K.scored(lg)} >= first, timeout=120)
        victim = _assigned(logs[0])
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=20)
        t_kill = time.time()
        for i, (sid, x) in enumerate(sigs.items()):
            R.send_all(prod, topic, [encode_audio(sid, x[j:j + SR // 10], SR, TS0 + j / SR)
                                     for j in range(half, len(x), SR // 10)], partition=i)
        moved = {f"s{p}" for _t, p in victim}
        every = set().union(*(K.expected_keys(sid, len(x), SR, TS0, SR, SR // 2) for sid, x in sigs.items()))
        moved_keys = {k for k in every if k.split("@")[0] in moved}
        K.wait_for(lambda: {s["key"] for lg in slogs[1:] for s in K.scored(lg)} >= moved_keys - first, timeout=120)
        recovery = time.time() - t_kill
        K.wait_for(lambda: _survivors_own_all(logs[1:], topic), timeout=60)
        after = [_assigned(lg) for lg in logs[1:]]
        K.wait_for(lambda: {s["key"] for lg in slogs for s in K.scored(lg)} >= every, timeout=120)
        assert [K.stop(p) for p in procs[1:]] == [0, 0]
    finally:
        prod.close()
        for p in procs:
            R.kill_quietly(p)
    scored = [s["key"] for lg in slogs for s in K.scored(lg)]
    got = {json.loads(r.value)["alert_id"] for r in K.read_topic(broker.bootstrap, f"{topic}-alerts")}
    assert set(scored) >= every and got == want_alerts  # every window at least once; every alert, same ids
    assert sorted(after[0] + after[1]) == [(topic, p) for p in range(6)]  # the survivors took the victim's share
    print(f"\nscale-out: windows {len(every)}, scored {len(scored)} ({len(scored) - len(set(scored))} twice), "
          f"alerts {len(got)}, partitions moved {len(victim)}, recovery after the kill {recovery:.1f} s")
