"""Issue 9, item 4: losing the broker (real broker processes of their own: these tests stop them).

On cf3559e a broker restarted with its memory storage (topics re-created) left the daemon
crashing on a refused commit or sitting at offsets past the end of the new log; the embedded
broker dying left the daemon retrying forever beside a zombie process; no broker at all meant
waiting forever; and ``streamad replay`` died with a traceback. Now the daemon logs one line per
broker state change, reads a restarted log again from its start, restarts its embedded broker
(or exits 4), exits 3 after ``kafka.broker_timeout_s`` without a broker, and replay retries.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from streamad.broker import EmbeddedBroker, api_versions_ok
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from tests import kafka_util as K
from tests import robust_util as R

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _topics(b, topic):
    ensure_topics(b.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)


def test_a_restarted_broker_and_its_new_log_are_followed(tmp_path, unique, audio_model, heldout_ambient):
    broker = EmbeddedBroker().start()
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    _topics(broker, topic)
    sig = np.concatenate([load_audio(f, SR) for f in heldout_ambient[:2]])
    half = len(sig) // 2
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    try:
        prod = R.fast_producer(broker.bootstrap)
        R.send_all(prod, topic, K.audio_chunks("mic", sig[:half], TS0), partition=1)
        prod.close()
        first = K.expected_keys("mic", half, SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= first, proc=proc, log=log, timeout=120)
        port = broker.port
        broker.stop()  # memory storage: the restarted broker has empty logs and no group
        R.wait_line(log, "broker unreachable", proc=proc, timeout=30)
        time.sleep(2)
        broker = EmbeddedBroker(port=port).start()
        t_back = time.time()
        _topics(broker, topic)
        prod = R.fast_producer(broker.bootstrap)  # the producer carries on where it was
        R.send_all(prod, topic, K.audio_chunks("mic", sig[half:], TS0 + half / SR), partition=1)
        prod.close()
        second = {k for k in K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2) - first
                  if int(k.split("@")[1]) >= int((TS0 + half / SR) * SR)}
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= second, proc=proc, log=log, timeout=120)
        recovery = time.time() - t_back
        assert K.stop(proc) == 0
    finally:
        R.kill_quietly(proc)
        broker.stop()
    text = log.read_text()
    assert re.search(r"partition audio-\w+/1: the log restarted", text), text[-2000:]
    assert text.count("broker unreachable") == 1 and text.count("broker reachable again") == 1
    print(f"\nrecovery after a broker restart with re-created topics: {recovery:.1f} s")


def test_no_broker_exits_3_and_replay_waits_for_it(tmp_path, unique, audio_model, heldout_ambient):
    broker = EmbeddedBroker().start()
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model, broker_timeout_s=8.0)
    _topics(broker, topic)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log)
    replay = None
    try:
        R.wait_line(log, "partitions assigned", proc=proc)
        os.killpg(broker.proc.pid, signal.SIGSTOP)  # the broker hangs: connections open, no answers
        t_stop = time.time()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        replay = subprocess.Popen([sys.executable, "-m", "streamad.cli", "replay", "--bootstrap", broker.bootstrap,
                                   "--topic", topic, "--stream-id", "late", str(heldout_ambient[0]), "--speed", "0"],
                                  stderr=subprocess.PIPE, text=True, env=env)  # --broker-timeout: 300 s
        assert proc.wait(timeout=90) == 3
        waited = time.time() - t_stop
        time.sleep(max(0.0, 33 - (time.time() - t_stop)))  # longer than the clients' 30 s request timeout
        os.killpg(broker.proc.pid, signal.SIGCONT)
        _, err = replay.communicate(timeout=120)
        assert replay.returncode == 0, err[-2000:]
    finally:
        R.kill_quietly(proc)
        if replay is not None and replay.poll() is None:
            replay.kill()
        os.killpg(broker.proc.pid, signal.SIGCONT)
        time.sleep(0.2)
        n = len(K.read_topic(broker.bootstrap, topic)) if replay is not None and replay.returncode == 0 else -1
        broker.stop()
    lines = log.read_text().splitlines()
    assert lines[-1].startswith("streamad: error: no broker reachable for") and "kafka.broker_timeout_s" in lines[-1]
    assert 8 <= waited < 60 and sum("broker unreachable" in x for x in lines) == 1
    assert "Traceback" not in err and "broker unreachable" in err
    assert n == len(K.audio_chunks("late", load_audio(heldout_ambient[0], SR), TS0))  # every chunk, none lost


def _embedded_port(log):
    m = re.search(r"embedded broker at 127\.0\.0\.1:(\d+)", log.read_text())
    return int(m.group(1)) if m else None


def test_the_embedded_broker_is_restarted_then_the_daemon_exits_4(tmp_path, unique, audio_model, heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model, bootstrap_servers=None)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = R.start_run(["--config", str(cfg), "--score-log", str(slog), "--device", "cpu"], log)
    sig = load_audio(heldout_ambient[0], SR)
    try:
        R.wait_line(log, "partitions assigned", proc=proc)
        bootstrap = f"127.0.0.1:{_embedded_port(log)}"
        (pid,) = [p for p in R.children(proc.pid)]
        os.kill(pid, signal.SIGKILL)
        R.wait_line(log, "restarting it on", proc=proc, timeout=30)
        K.wait_for(lambda: pid not in R.children(proc.pid) and not os.path.exists(f"/proc/{pid}"), timeout=10)
        K.wait_for(lambda: len(R.children(proc.pid)) == 1, timeout=30)  # a new broker, the old one reaped
        prod = R.fast_producer(bootstrap)
        R.send_all(prod, topic, K.audio_chunks("mic", sig, TS0), partition=0)
        prod.close()
        keys = K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2)
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= keys, proc=proc, log=log, timeout=120)
        for i in range(2, 5):  # kafka.embedded_restarts (3) is used up by the 4th death
            # the last restart is complete (its topics re-created): a broker killed while the daemon still
            # re-creates them costs the daemon that client's bootstrap timeout (30 s) before it notices
            R.wait_line(log, "the embedded broker is back on", proc=proc, timeout=60, count=i - 1)
            K.wait_for(lambda: len(R.children(proc.pid)) == 1, timeout=30)
            K.wait_for(lambda: api_versions_ok("127.0.0.1", int(bootstrap.split(":")[1])), timeout=30)  # up
            os.kill(R.children(proc.pid)[0], signal.SIGKILL)
            if i < 4:
                R.wait_line(log, "restarting it on", proc=proc, timeout=30, count=i)
        assert proc.wait(timeout=60) == 4
    finally:
        R.kill_quietly(proc)
        for p in R.children(proc.pid):
            os.kill(p, signal.SIGKILL)
    last = log.read_text().splitlines()[-1]
    assert last.startswith("streamad: error: the embedded broker exited") and "embedded_restarts" in last
