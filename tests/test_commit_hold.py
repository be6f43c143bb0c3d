"""Issue 9, item 3: one stream cannot hold its partition's commit back for long, and a restart
repeats nothing (real broker, real recordings).

On cf3559e a stream that stopped mid-window held its partition's commit for ``idle_stream_s``
(300 s) of wall time, so a restart re-read everything since: every dead letter was sent again
(they carried no id) and every alert too. Now a stream silent for ``worker.max_hold_s`` of stream
time (its partition's newest capture time moved on that far) releases its hold, and dead letters
carry a de-duplication key (``dlq_id``). Idle eviction in stream time: ``tests/test_stream_lifetime.py``.
"""
from __future__ import annotations

import json
import signal
import time

import numpy as np
import pytest

from streamad.io.codecs import encode_audio
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from tests import kafka_util as K
from tests import robust_util as R
from tests.conftest import GLASS

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def test_a_stopped_stream_does_not_hold_the_commit_and_a_restart_repeats_nothing(broker, tmp_path, unique,
                                                                                  audio_model, heldout_ambient):
    topic = f"audio-{unique}"
    group = f"g-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, group, audio_model)  # max_hold_s 30, idle_stream_s 300
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 1)
    stopper = load_audio(heldout_ambient[0], SR)[: int(1.7 * SR)]  # 2 windows, then it stops mid-window
    amb = np.concatenate([load_audio(f, SR) for f in heldout_ambient[1:5]])  # 40 s of another stream
    busy, _ = K.event_signal(amb, load_audio(sorted(GLASS.glob("*.wav"))[0], SR), SR, 25.0, 6.0)
    bad = (b"busy", b"\1\2\3", [("sample_rate", b"16000"), ("dtype", b"int16"), ("channels", b"1"),
                                ("timestamp", b"1800000000.0")])
    records = [encode_audio("stopper", stopper[i:i + SR // 10], SR, TS0 + i / SR)
               for i in range(0, len(stopper), SR // 10)]
    for j, i in enumerate(range(0, len(busy), SR // 10)):
        if j in (50, 150, 250):
            records.append(bad)
        records.append(encode_audio("busy", busy[i:i + SR // 10], SR, TS0 + i / SR))
    prod = R.fast_producer(broker.bootstrap)
    R.send_all(prod, topic, records, partition=0)
    prod.close()
    n = len(records)
    busy_keys = K.expected_keys("busy", len(busy), SR, TS0, SR, SR // 2)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= busy_keys, proc=proc, log=log, timeout=180)
        # the stopped stream no longer holds the commit (the busy one ran on 38 s > max_hold_s past it):
        # only the busy stream's last partial window does
        K.wait_for(lambda: (K.committed(broker.bootstrap, group, topic)[0] or 0) >= n - 12, proc=proc, log=log,
                   timeout=60)
        first = (len(K.scored(slog)), R.dead_letters(broker.bootstrap, f"{topic}-dlq"),
                 K.read_topic(broker.bootstrap, f"{topic}-alerts"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
        R.wait_line(log, "partitions assigned", proc=proc, count=2)
        time.sleep(4)
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    dlq = R.dead_letters(broker.bootstrap, f"{topic}-dlq")
    alerts = K.read_topic(broker.bootstrap, f"{topic}-alerts")
    assert len(first[1]) == 3 and len(dlq) == 3  # the restart re-sent no dead letter ...
    assert len(first[2]) >= 1 and len(alerts) == len(first[2])  # ... and no alert
    assert len(K.scored(slog)) - first[0] <= 2  # it re-read at most the busy stream's last partial window
    ids = [d["headers"]["dlq_id"] for d in dlq]
    assert len(set(ids)) == 3 and all(len(i) == 20 for i in ids)
    assert {json.loads(a.value)["stream_id"] for a in alerts} == {"busy"}
    print(f"\ncommit hold: records sent {n}, dead-lettered {len(dlq)} (re-sent 0), windows scored {first[0]} "
          f"(again after the kill {len(K.scored(slog)) - first[0]}), alerts {len(alerts)} (repeated 0), missing 0")
