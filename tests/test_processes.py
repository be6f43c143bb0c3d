"""``streamad run --processes N``: N consumers of one group on the real broker."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from tests import kafka_util as K

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _start(cfg, bootstrap, score_log, log, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "streamad.cli", "run", "--config", str(cfg), "--bootstrap",
                             bootstrap, "--score-log", str(score_log), "--device", "cpu", *extra],
                            stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env, start_new_session=True)


def test_two_processes_share_the_partitions_and_score_every_window(broker, tmp_path, unique, audio_model,
                                                                  heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    sigs = {f"mic-{i}": load_audio(heldout_ambient[i], SR) for i in range(4)}
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = _start(cfg, broker.bootstrap, slog, log, "--processes", "2")
    logs = [tmp_path / "scores.jsonl.0", tmp_path / "scores.jsonl.1"]
    try:
        K.wait_for(lambda: log.read_text().count("partitions assigned: [(") >= 2, proc=proc, log=log)
        for sid, sig in sigs.items():
            K.produce_audio(broker.bootstrap, topic, sid, sig, SR, TS0)
        want = set().union(*(K.expected_keys(s, len(x), SR, TS0, SR, SR // 2) for s, x in sigs.items()))
        K.wait_for(lambda: {s["key"] for lg in logs for s in K.scored(lg)} >= want, proc=proc, log=log)
        assert K.stop(proc) == 0  # SIGTERM to the parent stops both children cleanly
    finally:
        if proc.poll() is None:
            proc.kill()
    per_process = [{s["stream_id"] for s in K.scored(lg)} for lg in logs]
    assert all(per_process) and not (per_process[0] & per_process[1])  # both worked, on different streams
    assert log.read_text().count("stopped cleanly") == 2
    assert not slog.exists()


def test_a_failing_process_stops_the_others_with_its_exit_code(broker, tmp_path, unique):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", tmp_path / "no-such-model")
    log = tmp_path / "daemon.log"
    proc = _start(cfg, broker.bootstrap, tmp_path / "s.jsonl", log, "--processes", "2")
    try:
        assert proc.wait(timeout=120) == 2  # the children's code for a bad model directory
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "not a streamad model directory" in log.read_text()


def test_a_stop_that_came_while_the_parent_was_starting_starts_no_child():
    import signal

    from streamad.daemon.processes import run_processes

    def never(i):
        raise AssertionError("a child was started after the stop")

    assert run_processes(never, 2, pending=lambda: signal.SIGTERM) == 0


def test_the_parent_stops_the_children_when_its_embedded_broker_is_gone_for_good(tmp_path):
    """``tick`` is where the parent restarts its embedded broker; once the restarts are used up it
    raises DaemonExit(4): every child is stopped and the parent exits 4, none left running."""
    from streamad.daemon.processes import run_processes
    from streamad.daemon.supervisor import EXIT_BROKER_DIED, DaemonExit

    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: audio\nmodel: {path: %s}\n" % (tmp_path / "no-model"))
    calls = []

    def tick():
        calls.append(1)
        if len(calls) == 3:
            raise DaemonExit(EXIT_BROKER_DIED, "the embedded broker exited (code -9) and kafka.embedded_restarts "
                                               "is used up")

    # children that would exit 2 (no model) a few seconds later: the broker's end comes first
    argv = ["--config", str(cfg), "--bootstrap", "127.0.0.1:1", "--model", str(tmp_path / "no-model")]
    assert run_processes(lambda i: argv, 2, poll_s=0.1, tick=tick) == EXIT_BROKER_DIED


def test_sighup_to_the_parent_reloads_every_process(broker, tmp_path, unique, audio_model):
    import signal

    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    log = tmp_path / "daemon.log"
    proc = _start(cfg, broker.bootstrap, tmp_path / "s.jsonl", log, "--processes", "2")
    try:
        K.wait_for(lambda: log.read_text().count("partitions assigned: [(") >= 2, proc=proc, log=log)
        proc.send_signal(signal.SIGHUP)
        K.wait_for(lambda: log.read_text().count("model reload") >= 2, proc=proc, log=log)
        assert proc.poll() is None  # a reload, not a stop
        assert K.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().count("model reloaded for pipeline") == 2
