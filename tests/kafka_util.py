"""Small helpers for tests against the real broker (no mocks)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from streamad.config import KafkaConfig
from streamad.io import kafka as kio
from streamad.io.codecs import encode_audio


def audio_chunks(stream_id, signal_, ts0, sr=16000, chunk=1600, dtype="int16"):
    """(key, value, headers) records of a signal cut into ``chunk``-sample chunks (0.1 s at 16 kHz)."""
    return [encode_audio(stream_id, signal_[i:i + chunk], sr, ts0 + i / sr, dtype) for i in range(0, len(signal_), chunk)]


def produce_audio(bootstrap, topic, stream_id, signal_, sr, ts0, chunk_s=0.1, inject=None):
    """Publish a signal as chunks; ``inject`` = {chunk_index: (key, value, headers)} sent before that chunk."""
    prod = kio.producer(KafkaConfig(), bootstrap)
    n = int(chunk_s * sr)
    futs = []
    for j, i in enumerate(range(0, len(signal_), n)):
        if inject and j in inject:
            k, v, h = inject[j]
            futs.append(prod.send(topic, key=k, value=v, headers=h))
        k, v, h = encode_audio(stream_id, signal_[i:i + n], sr, ts0 + i / sr)
        futs.append(prod.send(topic, key=k, value=v, headers=h))
    prod.flush()
    for f in futs:
        f.get(timeout=30)
    prod.close()
    return len(futs)


def read_topic(bootstrap, topic, idle_s=1.5, max_s=20):
    """All records of a topic (every partition, from the start), without a consumer group."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      auto_offset_reset="earliest", consumer_timeout_ms=int(idle_s * 1000))
    parts = c.partitions_for_topic(topic) or set()
    c.assign([TopicPartition(topic, p) for p in parts])
    c.seek_to_beginning()
    out, t0 = [], time.time()
    for r in c:
        out.append(r)
        if time.time() - t0 > max_s:
            break
    c.close()
    return out


def alert_records(bootstrap, topic, kind="alert"):
    """The JSON records of one type ("alert" or "event_closed") on an alert topic."""
    return [r for r in (json.loads(x.value) for x in read_topic(bootstrap, topic)) if r.get("type") == kind]


def committed(bootstrap, group, topic):
    """{partition: committed offset or None} of a consumer group (read without joining it)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: c.committed(TopicPartition(topic, p)) for p in sorted(c.partitions_for_topic(topic) or ())}
    finally:
        c.close()


def write_config(path: Path, topic, group, model_dir, worker=None, **kafka_extra):
    cfg = {"kind": "audio", "kafka": {"input_topics": [topic], "alert_topic": f"{topic}-alerts",
                                      "dead_letter_topic": f"{topic}-dlq", "group_id": group,
                                      "session_timeout_ms": 2000, "heartbeat_interval_ms": 600,
                                      "partitions": 2, **kafka_extra},
           "model": {"path": str(model_dir)}}
    if worker:
        cfg["worker"] = worker
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_daemon(cfg_path, bootstrap, score_log, log_path, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "streamad.cli", "run", "--config", str(cfg_path),
                             "--bootstrap", bootstrap, "--score-log", str(score_log), "--device", "cpu", *extra],
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "ab"), env=env,
                            start_new_session=True)


def scored(score_log: Path) -> list[dict]:
    if not score_log.exists():
        return []
    lines = score_log.read_text().splitlines()
    return [json.loads(x) for x in lines if x.endswith("}")]


def wait_for(pred, timeout=90, every=0.2, proc=None, log=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited early ({proc.returncode}):\n"
                                 + (Path(log).read_text()[-3000:] if log else ""))
        time.sleep(every)
    raise AssertionError("timed out waiting" + (f"; daemon log:\n{Path(log).read_text()[-3000:]}" if log else ""))


def stop(proc, sig=signal.SIGTERM, timeout=30):
    proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def stop_when_scored(proc, score_log: Path, log_path: Path, keys: set[str]) -> None:
    """Wait until every window key in ``keys`` has been scored, then stop the daemon: it must exit 0."""
    wait_for(lambda: {s["key"] for s in scored(score_log)} >= keys, proc=proc, log=log_path)
    assert stop(proc) == 0


def expected_keys(stream_id, n_samples, sr, ts0, window, hop):
    p0 = int(round(ts0 * sr))
    assert p0 % hop == 0
    return {f"{stream_id}@{p0 + i * hop}" for i in range(1 + (n_samples - window) // hop)}


def event_signal(ambient, event, sr, at_s, ebr_db):
    from streamad.evaluation.mixing import mix_event, trim_event

    ev = trim_event(event, sr, 3.0)
    return mix_event(ambient, ev, int(at_s * sr), ebr_db), (at_s, at_s + len(ev) / sr)


__all__ = ["np"]
