"""The scoring worker on its own: jobs, holds, order, the adaptive batch rule, errors, config keys."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from streamad import config as C
from streamad.daemon.worker import MIN_BATCH, Job, ScoringWorker
from streamad.windows.base import Window


class FakePipe:
    """Scores a window as the mean of its data; records each batch it was given."""

    def __init__(self, delay: float = 0.0, fail: bool = False):
        self.batches: list[int] = []
        self.delay, self.fail = delay, fail
        self.gate = threading.Event()
        self.gate.set()

    def score(self, windows):
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("model broke")
        time.sleep(self.delay)
        self.batches.append(len(windows))
        s = np.array([float(w.data.mean()) for w in windows])
        return s, {"irec": s * 2}


def _items(n: int, first: int = 0, tp=("audio", 0)):
    return [((tp, f"s{i % 3}"), Window(f"s{i % 3}", i, i + 1, np.full(4, float(i), np.float32),
                                      {tp: (100 + i, 101 + i)}, key=f"s@{i}")) for i in range(first, first + n)]


def _collect(w: ScoringWorker, windows: int, timeout: float = 10.0):
    out, t0 = [], time.time()
    while sum(len(j.items) for r in out for j in r.jobs) < windows and time.time() - t0 < timeout:
        w.wait(0.1)
        out += w.finished()
    return out


def test_job_holds_the_oldest_source_offset_per_partition():
    items = _items(3) + _items(2, first=10, tp=("audio", 1))
    assert Job(None, items).hold == {("audio", 0): 100, ("audio", 1): 110}


def test_results_come_back_in_order_with_their_scores_and_the_depth_falls_to_zero():
    pipe = FakePipe()
    w = ScoringWorker(max_batch=8)
    try:
        pipe.gate.clear()  # hold the worker so that the jobs queue up
        jobs = w.submit(pipe, _items(20)) + w.submit(pipe, _items(5, first=20))
        assert [len(j.items) for j in jobs] == [8, 8, 4, 5] and w.depth == 25
        pipe.gate.set()
        results = _collect(w, 25)
    finally:
        w.close()
    assert w.depth == 0 and w.idle
    got = [(j.id, list(s)) for r in results for j, s, _c in r.split()]
    assert [g[0] for g in got] == [j.id for j in jobs]  # submission order
    assert [x for _, s in got for x in s] == [float(i) for i in range(25)]
    for r in results:
        for j, s, c in r.split():
            assert list(c["irec"]) == [2 * x for x in s]
    assert max(pipe.batches) <= 8


def test_queued_jobs_are_merged_up_to_the_cap_and_never_across_pipelines():
    a, b = FakePipe(), FakePipe()
    w = ScoringWorker(max_batch=64, latency_budget_s=60.0)
    try:
        a.gate.clear()
        w.submit(a, _items(1))  # taken at once; the worker waits on the gate
        time.sleep(0.2)
        for k in range(4):
            w.submit(a, _items(10, first=10 * k))
        w.submit(b, _items(10))
        w.submit(a, _items(10))
        a.gate.set()
        _collect(w, 61)
    finally:
        w.close()
    assert a.batches == [1, 40, 10] and b.batches == [10]


def test_adaptive_cap_follows_the_latency_budget():
    w = ScoringWorker(max_batch=256, latency_budget_s=0.1)
    try:
        assert w.cap() == 256  # no cost measured yet
        w.cost = 0.001  # 1 ms per window: 100 windows fit the budget
        assert w.cap() == 100
        w.cost = 1.0  # far too slow: still at least MIN_BATCH
        assert w.cap() == MIN_BATCH
        w.cost = 1e-6
        assert w.cap() == 256
    finally:
        w.close()


def test_cost_is_measured_from_scored_batches():
    pipe = FakePipe(delay=0.1)
    w = ScoringWorker(max_batch=20, latency_budget_s=0.1)
    try:
        w.submit(pipe, _items(2))  # too small a batch to tell the cost per window
        _collect(w, 2)
        assert w.cost is None
        w.submit(pipe, _items(20))
        _collect(w, 20)
    finally:
        w.close()
    assert w.cost == pytest.approx(0.005, rel=0.5) and w.cap() == pytest.approx(20, rel=0.5)


def test_a_scoring_error_reaches_the_poll_loop():
    w = ScoringWorker()
    try:
        w.submit(FakePipe(fail=True), _items(3))
        assert w.wait(5)
        with pytest.raises(RuntimeError, match="model broke"):
            w.finished()
    finally:
        w.close()


def test_test_hook_slows_every_batch(monkeypatch):
    monkeypatch.setenv("STREAMAD_TEST_SCORE_DELAY_S", "0.2")
    w = ScoringWorker(max_batch=5)
    try:
        t0 = time.perf_counter()
        w.submit(FakePipe(), _items(10))
        _collect(w, 10)
        assert time.perf_counter() - t0 >= 0.35
    finally:
        w.close()


@pytest.mark.parametrize("data,key", [
    ({"worker": {"queue_windows": 0}}, "worker.queue_windows"),
    ({"worker": {"latency_budget_s": -1}}, "worker.latency_budget_s"),
    ({"worker": {"precision": "int8"}}, "worker.precision"),
])
def test_worker_keys_are_checked(data, key):
    with pytest.raises(C.ConfigError) as e:
        C.from_dict(data)
    assert str(e.value).startswith(key)
