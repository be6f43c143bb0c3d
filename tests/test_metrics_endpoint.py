"""The daemon's /metrics, /healthz and /readyz on the real broker (issue 11)."""
from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request

import pytest

from streamad.broker import EmbeddedBroker, free_port
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from tests import kafka_util as K

SR = 16000
TS0 = 1_800_000_000.0
pytestmark = pytest.mark.broker


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def _value(text: str, metric: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total, found = 0.0, False
    for m in re.finditer(rf"^{metric}(?:{{([^}}]*)}})? (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total, found = total + float(m.group(2)), True
    return total if found else float("nan")


def test_metrics_move_with_records_and_readyz_follows_the_broker(tmp_path, unique, audio_model, heldout_ambient):
    broker = EmbeddedBroker().start()  # its own broker: this test stops it
    topic = f"audio-{unique}"
    port = free_port()
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model)
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    log, slog = tmp_path / "daemon.log", tmp_path / "scores.jsonl"
    proc = K.start_daemon(cfg, broker.bootstrap, slog, log, "--metrics-port", str(port))
    try:
        K.wait_for(lambda: _get(port, "/readyz")[0] == 200, proc=proc, log=log, timeout=60)
        code, body = _get(port, "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        metrics = _get(port, "/metrics")[1]
        assert _value(metrics, "streamad_windows_scored_total", pipeline="cfg") == 0
        assert _value(metrics, "streamad_model_info", pipeline="cfg", name="gmgan") == 1
        sig = load_audio(heldout_ambient[0], SR)
        bad = {5: (b"mic", b"\0\0\0", [("sample_rate", b"16000"), ("dtype", b"int16"), ("channels", b"1"),
                                      ("timestamp", b"1.0")])}
        n = K.produce_audio(broker.bootstrap, topic, "mic", sig, SR, TS0, inject=bad)
        windows = len(K.expected_keys("mic", len(sig), SR, TS0, SR, SR // 2))
        K.wait_for(lambda: _value(_get(port, "/metrics")[1], "streamad_windows_scored_total",
                                  pipeline="cfg") == windows, proc=proc, log=log)
        metrics = _get(port, "/metrics")[1]
        assert _value(metrics, "streamad_records_total", pipeline="cfg", topic=topic) == n
        assert _value(metrics, "streamad_dead_letters_total", pipeline="cfg", reason="bad_audio_payload") == 1
        assert _value(metrics, "streamad_score_seconds_count", pipeline="cfg") >= 1
        assert _value(metrics, "streamad_commits_total") >= 1
        assert _value(metrics, "streamad_streams_active", pipeline="cfg") == 1
        assert _value(metrics, "streamad_threshold", pipeline="cfg") > 0
        hearing = AnomalyModel.load(audio_model).hearing_check  # the test model trained with the check
        assert hearing is not None and _value(metrics, "streamad_model_hearing_check_auc", pipeline="cfg") == hearing
        assert _value(metrics, "streamad_consumer_lag", pipeline="cfg", topic=topic) == 0
        # the group's assigned partitions add up to the topic's (the StreamadPartitionsUnowned rule);
        # topic sizes are refreshed every 10 s
        assert _value(metrics, "streamad_partitions_assigned") == 2
        K.wait_for(lambda: _value(_get(port, "/metrics")[1], "streamad_topic_partitions", pipeline="cfg",
                                  topic=topic) == 2, proc=proc, log=log, timeout=30)
        broker.stop()  # the broker goes away: not ready, still alive
        K.wait_for(lambda: _get(port, "/readyz")[0] == 503, timeout=30)
        ready = json.loads(_get(port, "/readyz")[1])
        assert "broker" in ready["failing"] and _get(port, "/healthz")[0] == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        broker.stop()
