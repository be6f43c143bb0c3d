"""Stream lifetime rules of a pipeline, in-process with the real audio model (README "Time rules,
limits and exit codes"): hold bound and idle eviction in stream time, the clock a lone forged
record cannot move, the stream limit, non-finite scores. The daemon-level behaviour is tested on
the real broker in test_commit_hold.py, test_limits.py and test_stream_time.py."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from streamad.config import from_dict
from streamad.daemon.pipeline import Pipeline
from streamad.io.codecs import encode_audio
from streamad.model import AnomalyModel

SR = 16000
TS0 = 1_800_000_000.0
TP = ("t", 0)


@dataclass
class Rec:
    key: Any
    value: Any
    headers: list
    offset: int
    topic: str = "t"
    partition: int = 0


@pytest.fixture(scope="module")
def model(audio_model):
    return AnomalyModel.load(audio_model, device="cpu")


def _pipe(model, **worker):
    return Pipeline("cfg.yaml", from_dict({"kafka": {"input_topics": ["t"]}, "worker": worker}), model)


class _Feed:
    def __init__(self, pipe):
        self.pipe, self.offset = pipe, 0

    def chunk(self, sid, t, n=SR // 10, x=None):
        x = np.zeros(n, np.float32) if x is None else x
        k, v, h = encode_audio(sid, x, SR, t)
        items, rejects = self.pipe.accept(Rec(k, v, h, self.offset), TP)
        self.offset += 1
        return items, rejects


def test_a_silent_stream_releases_its_hold_then_is_evicted_in_stream_time(model):
    pipe = _pipe(model, max_hold_s=10.0, idle_stream_s=20.0)
    f = _Feed(pipe)
    for i in range(17):  # 1.7 s: 2 windows and a partial one, then silence
        f.chunk("a", TS0 + i / 10)
    a_oldest = pipe.needed_offsets()[TP]
    for i in range(95):  # another stream runs on for 9.5 s: a still holds the commit
        f.chunk("b", TS0 + i / 10)
    assert pipe.needed_offsets()[TP] == a_oldest
    for i in range(95, 250):  # 25 s: a is silent for more than max_hold_s of stream time
        f.chunk("b", TS0 + i / 10)
    assert pipe.needed_offsets()[TP] > a_oldest
    assert pipe.evict_idle(20.0)[0] == 0  # 20 s of stream time, but not yet max_hold_s of wall time
    assert pipe.evict_idle(20.0, now=time.monotonic() + 11)[0] == 1  # a is gone; b sent a moment ago ...
    assert [k[1] for k in pipe.streams] == ["b"]  # ... and stays


def test_a_lone_forged_record_of_a_new_key_does_not_move_the_clock(model):
    pipe = _pipe(model, max_hold_s=10.0)
    f = _Feed(pipe)
    for i in range(30):
        f.chunk("mic", TS0 + i / 10)
    clock = pipe.clocks[TP]
    f.chunk("forged", TS0 + 1e7)  # a new stream, one record, years ahead
    assert pipe.clocks[TP] == clock and TP in pipe.needed_offsets()


def test_the_stream_limit_evicts_the_least_recently_seen(model):
    pipe = _pipe(model, max_streams=3)
    f = _Feed(pipe)
    for sid in ("a", "b", "c"):
        f.chunk(sid, TS0)
    f.chunk("a", TS0 + 0.1)
    f.chunk("d", TS0)  # b is the least recently seen
    assert sorted(k[1] for k in pipe.streams) == ["a", "c", "d"]
    t = pipe.drain_tally()
    assert t["evicted"] == 1 and t["dropped"] == SR // 10


def test_non_finite_scores_are_counted_and_stay_out_of_the_rule(model, monkeypatch):
    pipe = _pipe(model)
    f = _Feed(pipe)
    items = []
    for i in range(30):
        items += f.chunk("mic", TS0 + i / 10, x=0.1 * np.ones(SR // 10, np.float32))[0]
    windows = [w for _, w in items]
    monkeypatch.setattr(pipe.model, "score_windows", lambda ws, b, p="float32": (np.full(len(ws), math.nan), {}))
    scores, comps = pipe.score(windows)
    assert pipe.decide(items, scores, comps) == []
    assert pipe.drain_tally()["nonfinite"] == len(windows)  # counted when decided (on the poll loop)
    st = next(iter(pipe.streams.values()))
    assert st.rule.seen == 0 and not st.rule.recent


def _readings(t, v, sid="pump"):
    from streamad.timelabels import Readings

    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    return Readings(sid, t, np.full((len(t), 1), v, np.float32), ["a"], [repr(float(x)) for x in t])


def _gate():
    from streamad.windows.series_buffer import ReadingStreamBuffer
    from streamad.windows.series_gate import GatedReadingBuffer

    return GatedReadingBuffer(lambda: ReadingStreamBuffer("pump", ["a"], 1.0, 8, 4, 2.0, 1), 3.0, 10.0)


def test_a_lone_reading_far_ahead_is_rejected_and_the_stream_goes_on():
    g, out = _gate(), []
    for i in range(10):
        out += g.push(_readings(100 + i, i), ("t", 0), i, ref=i)[0]
    out += g.push(_readings(1e9, 99.0), ("t", 0), 10, ref="forged")[0]  # a reading 30 years ahead
    assert g.oldest_needed()[("t", 0)] <= 10
    for i in range(10, 20):
        w, why = g.push(_readings(100 + i, i), ("t", 0), 11 + i, ref=i)
        out, _ = out + w, why
    assert [r for r, _ in g.rejected] == ["forged"] and "ahead of" in g.rejected[0][1]
    assert [w.start for w in out] == [100.0, 104.0, 108.0, 112.0] and g.tallies()["dropped"] == 1


def test_a_reading_clock_stepped_back_starts_the_stream_again():
    g, out = _gate(), []
    for i in range(10):
        out += g.push(_readings(3600 + i, i), ("t", 0), i)[0]
    assert g.push(_readings(0.0, 0.0), ("t", 0), 10) == ([], [])  # an hour back: waits
    for i in range(1, 12):
        out += g.push(_readings(float(i), i), ("t", 0), 10 + i)[0]
    assert g.rejected == [] and g.tallies()["steps_back"] == 1
    assert [w.start for w in out][-2:] == [0.0, 4.0]
