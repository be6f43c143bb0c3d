"""A deleted and re-created input topic is read again from its start once, in all its partitions.

Before 2026-12-05 (twenty-fifth session) the daemon noticed a re-created topic twice: first by a
partition whose new log was shorter than its position (that partition alone was read again), then,
when the client next refreshed its metadata (``metadata_max_age_ms``, 5 minutes by default), by the
topic's new id, which restarted every partition of the topic a second time: everything read since
the first restart was scored again (a 700-stream soak fell behind at 5 minutes on it), and a
partition whose new log had already grown past its old position was read from that position,
skipping the new log's first records, until then.
"""
from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest
from kafka import KafkaAdminClient

from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from tests import kafka_util as K
from tests import robust_util as R

SR = 16000
TS0, TS1 = 1_800_000_000.0, 1_800_000_500.0
pytestmark = pytest.mark.broker
METADATA_AGE_MS = 6000  # the client's periodic metadata refresh, short so that the test sees one


def _restart_lines(text: str, topic: str) -> Counter:
    return Counter(line.split("partition ")[1].split(":")[0] for line in text.splitlines()
                   if f"partition {topic}/" in line and "the log restarted" in line)


def test_a_recreated_topic_is_read_again_once_in_all_its_partitions(tmp_path, broker, unique, audio_model,
                                                                     heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model,
                         client={"metadata_max_age_ms": METADATA_AGE_MS})
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    sig = np.concatenate([load_audio(f, SR) for f in heldout_ambient[:2]])
    long_, short = sig[:20 * SR], sig[:5 * SR]
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        prod = R.fast_producer(broker.bootstrap)
        R.send_all(prod, topic, K.audio_chunks("a", long_, TS0), partition=1)  # 200 records
        R.send_all(prod, topic, K.audio_chunks("c", sig[:int(1.5 * SR)], TS0), partition=0)  # 15 records
        first = K.expected_keys("a", len(long_), SR, TS0, SR, SR // 2) | \
            K.expected_keys("c", int(1.5 * SR), SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= first, proc=proc, log=log, timeout=120)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        admin.delete_topics([topic])
        admin.close()
        ensure_topics(broker.bootstrap, [topic], 2)
        # the new log of partition 1 is shorter than the daemon's position there (50 < 200 records);
        # partition 0's is longer (50 > 15): only the topic id tells the daemon to read it from its start
        R.send_all(prod, topic, K.audio_chunks("b", short, TS1), partition=1)
        R.send_all(prod, topic, K.audio_chunks("d", short, TS1), partition=0)
        prod.close()
        second = K.expected_keys("b", len(short), SR, TS1, SR, SR // 2) | \
            K.expected_keys("d", len(short), SR, TS1, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= second, proc=proc, log=log, timeout=120)
        time.sleep(2.5 * METADATA_AGE_MS / 1000)  # at least two periodic metadata refreshes
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
    text = log.read_text()
    counts = Counter(s["key"] for s in K.scored(slog))
    assert {k for k in counts if k.split("@")[0] in ("b", "d")} == second
    # partition 1 cannot be read at its old position (its new log is shorter), so each of its windows is
    # scored once unless a second restart reads it again; partition 0 may be read at its old position for
    # the moment before the daemon looks (at most a second), and those windows are scored again once its
    # restart reads the new log from its start: a re-creation is noticed, not announced
    twice = sorted(k for k in second if k.startswith("b@") and counts[k] > 1)
    assert not twice, f"{len(twice)} windows of the new log scored more than once, e.g. {twice[:3]}\n{text[-3000:]}"
    assert _restart_lines(text, topic) == {f"{topic}/0": 1, f"{topic}/1": 1}, text[-3000:]
