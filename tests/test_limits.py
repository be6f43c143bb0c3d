"""Issue 9, item 5: bounded resources (real broker, real recordings).

On cf3559e every new stream key got a buffer for ``idle_stream_s`` (6 000 keys: +350 MB) and a
chunk of any size was buffered. Now a pipeline holds at most ``worker.max_streams`` streams (a new
one beyond it evicts the least recently seen one: logged, counted) and a record larger than
``worker.max_record_bytes`` is dead-lettered before it is decoded.
"""
from __future__ import annotations

import numpy as np
import pytest

from streamad.io.codecs import encode_audio
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from tests import kafka_util as K
from tests import robust_util as R

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def test_stream_limit_and_record_size_limit(broker, tmp_path, unique, audio_model, heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model,
                         worker={"max_streams": 40, "max_record_bytes": 65536})
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    sig = load_audio(heldout_ambient[3], SR)
    rng = np.random.default_rng(5)
    records, keys = [], 0
    for j, i in enumerate(range(0, len(sig), SR // 10)):
        records.append(encode_audio("mic", sig[i:i + SR // 10], SR, TS0 + i / SR))
        for _ in range(3):  # 3 new stream keys per chunk of the good stream: 300 in all
            records.append(encode_audio(f"k-{keys}", 0.01 * rng.standard_normal(SR // 10), SR, TS0 + i / SR))
            keys += 1
        if j == 50:
            records.append(encode_audio("mic-big", sig[:50000], SR, TS0))  # 100 000 bytes
    prod = R.fast_producer(broker.bootstrap)
    R.send_all(prod, topic, records, partition=0)
    prod.close()
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        want = K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= want, proc=proc, log=log, timeout=180)
        K.wait_for(lambda: len(R.dead_letters(broker.bootstrap, f"{topic}-dlq", 0.5)) >= 1, proc=proc, log=log)
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    last = R.stats_lines(log)[-1]
    assert last["streams"] <= 40 and last["evicted_streams"] >= keys + 1 - 40
    assert "stream limit worker.max_streams=40 reached" in log.read_text()
    (dl,) = R.dead_letters(broker.bootstrap, f"{topic}-dlq")
    assert dl["key"] == b"mic-big"
    assert dl["headers"]["dlq_reason"] == b"record of 100000 bytes exceeds worker.max_record_bytes (65536)"
    print(f"\nlimits: records sent {len(records)}, stream keys {keys + 2}, evicted {last['evicted_streams']}, "
          f"dead-lettered 1, windows scored {last['windows']}")
