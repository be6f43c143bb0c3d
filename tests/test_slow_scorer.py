"""Back-pressure on the real broker with real ambient audio: scoring is slowed on purpose
(``STREAMAD_TEST_SCORE_DELAY_S``, a sleep per batch inside the scoring worker), so the poll loop
decodes far faster than the worker scores. The consumer must pause its partitions, the scoring
queue and the process memory must stay bounded, and every window must still be scored exactly
as offline."""
from __future__ import annotations

import os
import re
import threading
import time
import urllib.request

import numpy as np
import pytest

from streamad.broker import free_port
from streamad.io.files import load_audio
from streamad.io.kafka import ensure_topics
from streamad.model import AnomalyModel
from streamad.windows.base import frame_windows
from tests import kafka_util as K

SR = 16000
TS0 = 1_800_000_000.0
STREAMS = 32
QUEUE = 64  # worker.queue_windows
POLL = 40  # kafka.max_poll_records: one poll adds at most 40 windows (0.1 s chunks, 0.5 s hop)
pytestmark = pytest.mark.broker


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


class _Sampler(threading.Thread):
    """Scrapes /metrics and the daemon's RSS every 0.1 s."""

    def __init__(self, pid: int, port: int):
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.samples: list[tuple[float, float, float]] = []  # (queue depth, paused partitions, RSS MB)
        self.done = False

    def run(self) -> None:
        while not self.done:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                self.samples.append((_metric(text, "streamad_scoring_queue_depth"),
                                     _metric(text, "streamad_paused_partitions"), _rss_mb(self.pid)))
            except (OSError, AttributeError):
                pass
            time.sleep(0.1)


def test_slow_scorer_pauses_stays_bounded_and_scores_every_window(broker, tmp_path, unique, audio_model,
                                                                   heldout_ambient):
    topic = f"audio-{unique}"
    cfg = K.write_config(tmp_path / "cfg.yaml", topic, f"g-{unique}", audio_model, max_poll_records=POLL,
                         worker={"queue_windows": QUEUE, "max_batch": 32, "latency_budget_s": 10.0})
    ensure_topics(broker.bootstrap, [topic, f"{topic}-alerts", f"{topic}-dlq"], 2)
    files = [load_audio(f, SR) for f in heldout_ambient]
    sigs = {f"mic-{i}": np.concatenate([files[(i + j) % len(files)] for j in range(len(files))])
            for i in range(STREAMS)}  # 60 s of real ambient per stream, each in its own order
    for sid, sig in sigs.items():  # the whole backlog is there before the daemon starts
        K.produce_audio(broker.bootstrap, topic, sid, sig, SR, TS0)
    want = set().union(*(K.expected_keys(s, len(x), SR, TS0, SR, SR // 2) for s, x in sigs.items()))
    backlog_mb = len(want) * SR * 4 / 2**20  # what the queued windows alone would take unbounded
    log, slog, port = tmp_path / "daemon.log", tmp_path / "scores.jsonl", free_port()
    os.environ["STREAMAD_TEST_SCORE_DELAY_S"] = "0.05"
    try:
        proc = K.start_daemon(cfg, broker.bootstrap, slog, log, "--metrics-port", str(port))
    finally:
        del os.environ["STREAMAD_TEST_SCORE_DELAY_S"]
    sampler = _Sampler(proc.pid, port)
    try:
        K.wait_for(lambda: len(K.scored(slog)) > 0, proc=proc, log=log, every=0.02)
        rss0 = _rss_mb(proc.pid)
        sampler.start()
        K.wait_for(lambda: {s["key"] for s in K.scored(slog)} >= want, proc=proc, log=log, timeout=120)
        sampler.done = True
        assert K.stop(proc) == 0
    finally:
        sampler.done = True
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "scoring queue full" in text and "partitions resumed" in text  # it paused, and came back
    depth, paused, rss = (np.array(c) for c in zip(*sampler.samples))
    assert paused.max() >= 1  # seen on /metrics (streamad_paused_partitions)
    assert depth.max() <= QUEUE + POLL  # the queue never grew past the mark plus one poll
    assert rss.max() - rss0 < backlog_mb / 2, (rss0, rss.max(), backlog_mb)  # unbounded: most of it
    # every window scored, exactly as offline (int16 on the wire), and none twice
    rows = K.scored(slog)
    assert len(rows) == len(want) == len({r["key"] for r in rows})
    model = AnomalyModel.load(audio_model, device="cpu")
    p0 = int(TS0 * SR)
    offline = {}
    for sid, sig in sigs.items():
        wire = (np.round(np.clip(sig, -1, 1) * 32767) / 32768).astype(np.float32)
        sc, _ = model.score(frame_windows(wire, SR, SR // 2))
        offline.update({f"{sid}@{p0 + i * (SR // 2)}": s for i, s in enumerate(sc)})
    for r in rows:
        assert r["score"] == pytest.approx(offline[r["key"]], rel=1e-4, abs=1e-4), r["key"]
