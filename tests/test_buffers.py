import numpy as np

from streamad.windows.audio_buffer import AudioStreamBuffer

SR = 100


def _buf():
    return AudioStreamBuffer("s", SR, window=100, hop=50, gap_tolerance=2)


def test_windows_on_absolute_grid_with_offsets():
    b = _buf()
    out = []
    x = np.arange(400, dtype=np.float32)
    for i in range(8):  # 0.5 s chunks starting at t = 10.3 s
        out += b.push(x[i * 50:(i + 1) * 50], 10.3 + i * 0.5, ("t", 0), offset=i)
    starts = [w.start for w in out]
    assert starts == [10.5, 11.0, 11.5, 12.0, 12.5, 13.0]  # grid multiples of hop; data ends at 14.3
    np.testing.assert_array_equal(out[0].data, x[20:120])
    assert out[0].sources[("t", 0)] == (0, 2)
    # the next window (13.5) starts inside chunk 6 (13.3-13.8) -> oldest needed offset 6
    assert b.oldest_needed() == {("t", 0): 6}


def test_restart_reproduces_the_same_windows():
    x = np.random.default_rng(1).normal(size=600).astype(np.float32)
    full, late = _buf(), _buf()
    a = [w for i in range(12) for w in full.push(x[i * 50:(i + 1) * 50], 100 + i * 0.5, ("t", 0), i)]
    b = [w for i in range(5, 12) for w in late.push(x[i * 50:(i + 1) * 50], 100 + i * 0.5, ("t", 0), i)]
    keys_a = {w.key: w.data for w in a}
    assert b and all(w.key in keys_a and np.array_equal(keys_a[w.key], w.data) for w in b)


def test_duplicate_and_overlap_dropped():
    b = _buf()
    x = np.ones(50, np.float32)
    b.push(x, 0.0)
    assert b.push(x, 0.0) == [] and b.stats.duplicate_samples == 50
    b.push(np.full(50, 2, np.float32), 0.25)  # half overlaps
    assert len(b.buf) == 75 and b.stats.duplicate_samples == 75


def test_gap_restarts_segment_once_the_next_chunk_continues_it():
    b = _buf()
    b.push(np.ones(80, np.float32), 0.0)
    assert b.push(np.ones(100, np.float32), 5.0) == []  # 4.2 s gap: pending until the next chunk
    w = b.push(np.ones(50, np.float32), 6.0)  # continues the chunk after the gap: a new segment
    assert b.stats.gaps == 1 and [x.start for x in w] == [5.0, 5.5]
    assert b.stats.dropped_samples == 80 and b.rejected == []


def test_lone_chunk_far_ahead_is_rejected_and_does_not_move_the_stream():
    b = _buf()
    x = np.arange(400, dtype=np.float32)
    out = b.push(x[:50], 10.0, ("t", 0), 0, ref="r0")
    out += b.push(np.ones(50, np.float32), 1e6, ("t", 0), 1, ref="forged")  # one chunk years ahead
    assert b.oldest_needed() == {("t", 0): 0}
    for i in range(1, 8):
        out += b.push(x[i * 50:(i + 1) * 50], 10.0 + i * 0.5, ("t", 0), i + 1, ref=f"r{i}")
    assert [w.start for w in out] == [10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0]  # nothing lost
    np.testing.assert_array_equal(out[-1].data, x[300:400])
    assert [r for r, _ in b.rejected] == ["forged"] and "ahead of" in b.rejected[0][1]
    assert b.stats.outliers == 1 and b.stats.duplicate_samples == 0


def test_clock_step_back_starts_a_new_segment():
    b = _buf()
    b.push(np.ones(120, np.float32), 3600.0)
    assert b.push(np.ones(50, np.float32), 0.0) == []  # an hour back: pending
    w = b.push(np.ones(100, np.float32), 0.5)  # continued: the clock really stepped back
    assert [x.start for x in w] == [0.0, 0.5] and b.stats.steps_back == 1 and b.rejected == []


def test_jitter_within_tolerance_is_contiguous():
    b = _buf()
    b.push(np.ones(50, np.float32), 0.0)
    w = b.push(np.ones(50, np.float32), 0.51)  # 1 sample late: within tolerance
    assert b.stats.gaps == 0 and len(w) == 1


def test_context_windows_carry_the_samples_before_their_span_and_survive_a_restart():
    """audio.context_s: each window's data starts ``lead`` samples before the span it stands for; a
    stream's first window stands for the span after one lead of context. A daemon restarted from
    the committed offset (oldest_needed) re-creates every window not yet cut, with the same
    context: none is lost or heard against less context."""
    x = np.random.default_rng(2).normal(size=1200).astype(np.float32)

    def buf():
        return AudioStreamBuffer("s", SR, window=150, hop=50, gap_tolerance=2, lead=50)

    first = []
    b = buf()
    for i in range(4):  # 0.5 s chunks from t = 10.3 s
        first += b.push(x[i * 50:(i + 1) * 50], 10.3 + i * 0.5, ("t", 0), offset=i)
    assert [(w.start, w.end) for w in first] == [(11.0, 12.0)]  # grid point 10.5 + 0.5 s of context
    np.testing.assert_array_equal(first[0].data, x[20:170])
    for cut in (5, 9, 14):
        full = buf()
        done = [w for i in range(cut) for w in full.push(x[i * 50:(i + 1) * 50], 10.3 + i * 0.5, ("t", 0), i)]
        later = [w for i in range(cut, 24) for w in full.push(x[i * 50:(i + 1) * 50], 10.3 + i * 0.5, ("t", 0), i)]
        probe = buf()  # what the daemon commits once chunks [0, cut) are in and their windows decided
        for i in range(cut):
            probe.push(x[i * 50:(i + 1) * 50], 10.3 + i * 0.5, ("t", 0), i)
        resume = buf()
        got = [w for i in range(probe.oldest_needed()[("t", 0)], 24)
               for w in resume.push(x[i * 50:(i + 1) * 50], 10.3 + i * 0.5, ("t", 0), i)]
        by_key = {w.key: w for w in got}
        assert later and all(w.key in by_key and np.array_equal(by_key[w.key].data, w.data) for w in later), cut
        assert {w.key for w in got} <= {w.key for w in done + later}  # nothing new, at most re-cut
