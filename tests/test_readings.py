"""Tests for the numeric readings wire format and ReadingStreamBuffer.

Expected windows are worked out by hand from the documented rules (grid = multiples of
hop, emit when complete or more than tol slots behind the newest, interpolate runs of
<= max_gap, skip windows touching longer runs); the data are linear ramps so interpolated
values equal the true ones.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from streamad.io.codecs import PayloadError
from streamad.io.readings import Readings, decode_readings, encode_readings, format_time_like
from streamad.windows.series_buffer import ReadingStreamBuffer

TP = ("series", 0)


# ---------------------------------------------------------------------------
# wire format
# ---------------------------------------------------------------------------
def test_single_reading_round_trip():
    k, v, h = encode_readings("pump-1", [1583748873.0], np.array([[0.1, 79.25]], np.float32),
                              ["Pressure", "Temperature"], batch=False)
    assert k == b"pump-1" and json.loads(v) == {"ts": 1583748873.0,
                                               "values": {"Pressure": 0.1, "Temperature": 79.25}}
    r = decode_readings(k, v, h)
    assert r.stream_id == "pump-1" and r.channels == ["Pressure", "Temperature"]
    assert r.times.tolist() == [1583748873.0] and r.times.dtype == np.float64
    assert r.values.dtype == np.float32 and r.values.tolist() == [[np.float32(0.1), 79.25]]
    # decoder side: ISO timestamp, label kept verbatim, naive = UTC
    r = decode_readings(b"s", b'{"ts": "2020-03-09 10:14:33", "values": {"a": 1}}', [])
    assert r.time_labels == ["2020-03-09 10:14:33"]
    assert r.times[0] == datetime(2020, 3, 9, 10, 14, 33, tzinfo=timezone.utc).timestamp()


def test_batch_round_trip_ecg_like():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(720, 2)).astype(np.float32)
    x[5, 1] = np.nan
    t = 1000.0 + np.arange(720) / 360.0
    k, v, h = encode_readings("ecg", t, x, ["MLII", "V5"])
    obj = json.loads(v)
    assert obj["t0"] == 1000.0 and obj["rate_hz"] == pytest.approx(360.0) and obj["values"][5][1] is None
    r = decode_readings(k, v, h)
    np.testing.assert_array_equal(r.values, x)  # float32 survives the decimal round trip exactly
    np.testing.assert_allclose(r.times, t, rtol=0, atol=1e-9)
    assert r.time_labels[:2] == ["1000.0", "1000.002778"]
    with pytest.raises(ValueError, match="evenly spaced"):
        encode_readings("ecg", [0.0, 1.0, 3.0], np.zeros((3, 1)), ["a"])


def test_list_round_trip_with_labels_and_channel_mapping():
    labels = ["2020-03-09 10:14:33", "2020-03-09T10:14:34Z", "2020-03-09T11:14:35+01:00"]
    t0 = datetime(2020, 3, 9, 10, 14, 33, tzinfo=timezone.utc).timestamp()
    x = np.array([[1, 2], [3, np.nan], [5, 6]], np.float32)
    k, v, h = encode_readings("s", [0, 0, 0], x, ["a", "b"], batch=False, time_labels=labels)
    r = decode_readings(k, v, h)
    assert r.time_labels == labels
    assert r.times.tolist() == [t0, t0 + 1, t0 + 2]  # the +01:00 label is 10:14:35 UTC
    np.testing.assert_array_equal(r.values, x)
    r = decode_readings(k, v, h, channels=["b", "c", "a"])  # reorder; unknown c -> NaN
    assert r.channels == ["b", "c", "a"]
    np.testing.assert_array_equal(r.values[:, 2], [1, 3, 5])
    assert r.values[0, 0] == 2 and np.isnan(r.values[1, 0]) and np.isnan(r.values[:, 1]).all()


def test_batch_time_labels_follow_t0_style():
    v = json.dumps({"t0": "2020-03-09 10:14:33", "rate_hz": 2, "channels": ["a"], "values": [[1], [2], [3]]})
    r = decode_readings(b"s", v.encode(), None)
    assert r.time_labels == ["2020-03-09 10:14:33", "2020-03-09 10:14:33.500000", "2020-03-09 10:14:34"]
    assert r.times[2] - r.times[0] == 1.0
    assert format_time_like(1583748874.0, "2020-03-09T10:14:33Z") == "2020-03-09T10:14:34Z"
    assert format_time_like(1583748874.0, "1583748873") == "1583748874"


def test_non_finite_values_become_nan():
    r = decode_readings(b"s", b'{"ts": 1, "values": {"a": NaN, "b": Infinity, "c": null, "d": 1e999, "e": 2}}')
    assert r.channels == ["a", "b", "c", "d", "e"]
    assert np.isnan(r.values[0, :4]).all() and r.values[0, 4] == 2


BAD = [
    (None, b'{"ts": 1, "values": {"a": 1}}', "missing key"),
    (b"s", b"", "empty payload"),
    (b"s", b"\xff\xfe{", "not UTF-8"),
    (b"s", b'{"ts": 1, "values": {"a": 1}', "invalid JSON"),
    (b"s", b'{"values": {"a": 1}}', "missing 'ts'"),
    (b"s", b'{"ts": 1}', "missing 'values'"),
    (b"s", b'{"ts": "yesterday", "values": {"a": 1}}', "bad timestamp 'yesterday'"),
    (b"s", b'{"ts": true, "values": {"a": 1}}', "timestamp must be a number or an ISO-8601 string"),
    (b"s", b'{"ts": 1e20, "values": {"a": 1}}', "timestamp out of range"),
    (b"s", b'{"ts": NaN, "values": {"a": 1}}', "timestamp is not finite"),
    (b"s", b'{"ts": 1, "values": {"a": "1.5"}}', "channel 'a': value must be a number or null, got \"1.5\""),
    (b"s", b'{"ts": 1, "values": {"a": true}}', "channel 'a': value must be a number"),
    (b"s", b'{"ts": 1, "values": {"a": [1]}}', "channel 'a': value must be a number"),
    (b"s", b'{"ts": 1, "values": [1, 2]}', "'values' must be an object"),
    (b"s", b'{"ts": 1, "values": {}}', "'values' is empty"),
    (b"s", b'{"foo": 1}', "unknown structure"),
    (b"s", b"42", "unknown structure"),
    (b"s", b"[]", "empty batch"),
    (b"s", b'[{"ts": 1, "values": {"a": 1}}, 5]', "reading 1: expected an object"),
    (b"s", b'[{"ts": 1, "values": {"a": 1}}, {"ts": "x", "values": {"a": 1}}]', "reading 1: bad timestamp"),
    (b"s", b'{"t0": 1, "rate_hz": 10, "channels": ["a"], "values": []}', "empty batch"),
    (b"s", b'{"t0": 1, "channels": ["a"], "values": [[1]]}', "missing 'rate_hz'"),
    (b"s", b'{"t0": 1, "rate_hz": 0, "channels": ["a"], "values": [[1]]}', "'rate_hz' must be a number"),
    (b"s", b'{"t0": 1, "rate_hz": 1, "channels": ["a", "a"], "values": [[1, 2]]}', "listed twice"),
    (b"s", b'{"t0": 1, "rate_hz": 1, "channels": ["a", "b"], "values": [[1, 2], [3]]}',
     "batch row 1: expected 2 values, got 1 values"),
    (b"s", b'{"t0": 1, "rate_hz": 1, "channels": ["a", "b"], "values": [[1, "x"]]}',
     "batch row 0 channel 'b': value must be a number"),
    (b"s", b'{"t0": 1, "rate_hz": 1, "channels": ["a"], "values": [[false]]}', "value must be a number"),
    (b"s", b'{"t0": "later", "rate_hz": 1, "channels": ["a"], "values": [[1]]}', "bad timestamp"),
    (b"s", b'{"t0": 1, "ts": 1, "rate_hz": 1, "channels": ["a"], "values": [[1]]}', "ambiguous"),
]


@pytest.mark.parametrize("key,value,reason", BAD)
def test_payload_errors(key, value, reason):
    with pytest.raises(PayloadError) as e:
        decode_readings(key, value, [])
    assert reason in str(e.value) and "\n" not in str(e.value)


def test_too_many_rows_and_missing_channels():
    def batch(n):
        return ('{"t0": 0, "rate_hz": 100, "channels": ["a"], "values": [' + ",".join(["[1]"] * n) + "]}").encode()

    with pytest.raises(PayloadError, match=r"too many rows \(100001 > 100000\)"):
        decode_readings(b"s", batch(100_001))
    assert len(decode_readings(b"s", batch(100_000)).times) == 100_000  # the limit itself is fine
    many = "[" + ",".join(['{"ts": 1, "values": {"a": 1}}'] * 100_001) + "]"
    with pytest.raises(PayloadError, match="too many rows"):
        decode_readings(b"s", many.encode())
    with pytest.raises(PayloadError, match=r"none of the expected channels \(x, y\).*got: a"):
        decode_readings(b"s", b'{"ts": 1, "values": {"a": 1}}', [], channels=["x", "y"])


# ---------------------------------------------------------------------------
# buffer
# ---------------------------------------------------------------------------
def R(ts, vals, channels=("a",), labels=None) -> Readings:
    ts = np.asarray(ts, dtype=np.float64).reshape(-1)
    v = np.asarray(vals, dtype=np.float32).reshape(len(ts), -1)
    return Readings("s", ts, v, list(channels), labels or [repr(float(t)) for t in ts])


def buf(window=4, hop=2, tol=2.0, max_gap=1, channels=("a",), rate=1.0) -> ReadingStreamBuffer:
    return ReadingStreamBuffer("s", list(channels), rate, window, hop, tol, max_gap)


def feed(b, ts, vals=None, channels=("a",), offset0=0):
    """Push readings one record each (offset = offset0 + i); return (windows, reasons)."""
    out, why = [], []
    vals = ts if vals is None else vals
    for i, (t, v) in enumerate(zip(ts, vals)):
        w, r = b.push(R([t], [v], channels), TP, offset0 + i)
        out += w
        why += r
    return out, why


def test_in_order_windows_on_absolute_grid():
    b = buf()
    ts = [3.2, 4.1, 5.0, 5.9, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]  # jitter rounds to slots 3..12
    out, why = feed(b, ts, [10 * round(t) for t in ts])
    assert why == []
    # first reading at slot 3 -> first window at the next multiple of hop (4); complete windows
    # are emitted at once: [4..7], [6..9], [8..11]; [10..13] still lacks 13
    assert [w.key for w in out] == ["s@4", "s@6", "s@8"]
    w = out[0]
    assert (w.start, w.end) == (4.0, 7.0) and w.data.dtype == np.float32 and w.data.shape == (4, 1)
    assert w.data[:, 0].tolist() == [40, 50, 60, 70]
    assert (w.start_label, w.end_label) == ("4.1", "7.0")  # the input labels, not the grid times
    assert w.sources == {TP: (1, 4)}  # offsets of slots 4..7
    assert b.stats.windows == 3 and b.stats.readings == 10


def test_grid_at_other_rates():
    b = ReadingStreamBuffer("s", ["a"], 4.0, 8, 4, 0.5, 1)
    t = 100.0 + np.arange(20) / 4.0  # slots 400..419
    out, _ = b.push(R(t, np.arange(20)), TP, 7)
    assert [w.key for w in out] == ["s@400", "s@404", "s@408", "s@412"]
    assert out[1].start == 101.0 and out[1].end == 102.75 and out[1].data[:, 0].tolist() == list(range(4, 12))
    assert all(w.sources == {TP: (7, 7)} for w in out)


def test_duplicate_dropped_without_reason():
    b = buf()
    out, _ = feed(b, [0, 1, 2])
    other = ("resent", 0)
    w, why = b.push(R([1], [99.0]), other, 10)  # re-sent reading with another value: first wins
    assert (w, why) == ([], []) and b.stats.duplicates == 1
    w, why = b.push(R([0, 1, 2], [0, 1, 2]), other, 11)  # a whole record delivered twice
    assert why == [] and b.stats.duplicates == 4
    w, _ = b.push(R([3], [3]), TP, 12)
    assert [x.key for x in w] == ["s@0"] and w[0].data[:, 0].tolist() == [0, 1, 2, 3]
    assert b.stats.readings == 4 and b.stats.too_late == 0
    assert w[0].sources == {TP: (0, 12)}  # the re-sent records supplied nothing


def test_late_reading_within_tolerance_fills_its_slot():
    b = buf(max_gap=0)  # no interpolation: the late value must really be placed
    out, _ = feed(b, [0, 1, 3, 4], [0, 10, 30, 40])
    assert out == []
    w, why = b.push(R([2], [20]), TP, 9)  # 2 slots behind the newest (4) = tol -> accepted
    assert why == [] and b.stats.late == 1 and b.stats.too_late == 0
    assert [x.key for x in w] == ["s@0"] and w[0].data[:, 0].tolist() == [0, 10, 20, 30]
    assert w[0].sources == {TP: (0, 9)}


def test_too_late_reading_rejected_with_reason():
    b = buf()  # tol 2 s, max_gap 1
    out, _ = feed(b, [0, 1, 3, 4, 5], [0, 10, 30, 40, 50])
    assert out == []  # window [0..3] lacks slot 2 and its end is only 5-3 = 2 slots behind
    w, _ = b.push(R([6], [60]), TP, 5)  # 6-3 = 3 > 2: due, slot 2 interpolated
    assert [x.key for x in w] == ["s@0"] and w[0].data[:, 0].tolist() == [0, 10, 20, 30]
    assert b.stats.filled_values == 1
    assert w[0].start_label == "0.0" and w[0].end_label == "3.0"
    w, why = b.push(R([2], [21], labels=["t=2"]), TP, 6)  # 4 s behind the newest (6)
    assert w == [] and b.stats.too_late == 1 and len(why) == 1
    assert "too late" in why[0] and "t=2" in why[0] and "2 s" in why[0] and "\n" not in why[0]
    # a record mixing on-time and too-late readings: the on-time ones are kept
    w, why = b.push(R([0, 1, 7], [0, 1, 70]), TP, 7)
    assert b.stats.too_late == 3 and b.stats.readings == 7 and "2 reading(s)" in why[0]


def test_short_gap_interpolated_across_window_edges():
    b = buf(max_gap=2)
    ts = [0, 1, 2, 5, 6, 7, 8, 9]  # slots 3 and 4 missing (run of 2 = max_gap)
    out, _ = feed(b, ts, [10 * t for t in ts])
    # newest 9: due windows end before 9-2 = 7: [0..3] and [2..5]; [4..7] is only 2 behind
    assert [w.key for w in out] == ["s@0", "s@2"]
    assert out[0].data[:, 0].tolist() == [0, 10, 20, 30]  # right neighbour 50 lies outside the window
    assert out[1].data[:, 0].tolist() == [20, 30, 40, 50]
    w, _ = b.push(R([10], [100]), TP, 99)
    # [4..7]: its left neighbour (slot 2) was already dropped from the buffer
    assert [x.key for x in w] == ["s@4", "s@6"] and w[0].data[:, 0].tolist() == [40, 50, 60, 70]
    assert w[0].start_label == "4"  # interpolated slot: its grid time, styled like '10.0'
    assert b.stats.filled_values == 1 + 2 + 1 and b.stats.skipped_windows == 0


def test_long_gap_skips_windows_and_grid_continues():
    ts = [t for t in range(21) if t not in (6, 7, 8)]  # run of 3 > max_gap 1
    b = buf()
    out, _ = feed(b, ts)
    # windows touching slots 6..8 ([4..7], [6..9], [8..11]) are skipped; next start: 10
    assert [w.key for w in out] == ["s@0", "s@2", "s@10", "s@12", "s@14", "s@16"]
    assert b.stats.skipped_windows == 3 and b.stats.filled_values == 0
    assert out[2].data[:, 0].tolist() == [10, 11, 12, 13]
    # the same readings in one record give the same windows
    b2 = buf()
    out2, _ = b2.push(R(ts, ts), TP, 0)
    assert [w.key for w in out2] == [w.key for w in out] and b2.stats.skipped_windows == 3


def test_nan_is_a_gap():
    ts = list(range(21))
    vals = [np.nan if t in (3, 6, 7, 8) else t for t in ts]  # NaN at 3 (short) and 6..8 (long)
    b = buf()
    out, _ = feed(b, ts, vals)
    assert [w.key for w in out] == ["s@0", "s@2", "s@10", "s@12", "s@14", "s@16"]
    assert out[0].data[:, 0].tolist() == [0, 1, 2, 3] and b.stats.filled_values == 2
    assert b.stats.skipped_windows == 3 and b.stats.duplicates == 0
    # a finite value for a NaN slot is not a duplicate
    b = buf()
    feed(b, [0, 1], [0, np.nan])
    b.push(R([1], [np.inf]), TP, 5)
    assert b.stats.duplicates == 0  # nothing there yet, Inf is just another missing value
    w, _ = b.push(R([1, 2, 3], [1, 2, 3]), TP, 6)
    assert b.stats.duplicates == 0 and w[0].data[:, 0].tolist() == [0, 1, 2, 3]


def test_channels_matched_by_name():
    b = buf(channels=("a", "b"), max_gap=1)
    w, _ = b.push(R([0, 1], [[10, 0, 99], [11, 1, 99]], channels=("b", "a", "extra")), TP, 0)
    w, _ = b.push(R([2], [2], channels=("a",)), TP, 1)  # b missing at slot 2
    w, _ = b.push(R([3], [[3, 13]], channels=("a", "b")), TP, 2)
    assert [x.key for x in w] == []  # slot 2 of b is empty: not complete, not yet due
    w, why = b.push(R([4], [7], channels=("c",)), TP, 3)
    assert w == [] and b.stats.no_channels == 1 and "none of the channels a, b" in why[0]
    w, _ = b.push(R([4, 5, 6], [[4, 14], [5, 15], [6, 16]], channels=("a", "b")), TP, 4)
    # [0..3] is due (6-3 > 2): b's slot 2 interpolated; [2..5] is neither due nor complete
    assert [x.key for x in w] == ["s@0"]
    np.testing.assert_array_equal(w[0].data, [[0, 10], [1, 11], [2, 12], [3, 13]])


def test_reading_may_fill_empty_channels_of_a_slot():
    b = buf(channels=("a", "b"), max_gap=1)
    b.push(R([0, 1], [[0, 10], [1, 11]], channels=("a", "b")), TP, 0)
    b.push(R([2], [2.5], channels=("a",)), TP, 1)
    w, why = b.push(R([2], [[np.nan, 50]], channels=("a", "b")), TP, 2)  # a already there, b new
    assert why == [] and b.stats.duplicates == 0 and b.stats.readings == 4
    w, _ = b.push(R([3], [[3, 13]], channels=("a", "b")), TP, 3)
    assert [x.key for x in w] == ["s@0"]  # complete now: real values, nothing interpolated
    np.testing.assert_array_equal(w[0].data, [[0, 10], [1, 11], [2.5, 50], [3, 13]])
    b.push(R([3], [[3, 99]], channels=("a", "b")), TP, 4)  # both channels already there
    assert b.stats.duplicates == 1


def test_channel_that_never_reported_skips_until_it_does():
    b = buf(channels=("a", "b"))
    out, _ = b.push(R(range(12), [[t, np.nan if t < 5 else t] for t in range(12)], channels=("a", "b")), TP, 0)
    # b has no value before slot 5 -> windows 0, 2, 4 (touching 0..4) skipped; 6 and 8 complete
    assert [w.key for w in out] == ["s@6", "s@8"] and b.stats.skipped_windows == 3


def test_labels_of_iso_streams():
    t0 = datetime(2020, 3, 9, 10, 14, 32, tzinfo=timezone.utc).timestamp()  # even slot
    ts = [t0 + i for i in range(12) if i != 2]
    labels = [datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for t in ts]
    b = buf()
    out = []
    for t, lab in zip(ts, labels):
        out += b.push(R([t], [1.0], labels=[lab]), TP, 0)[0]
    assert out[0].start_label == "2020-03-09 10:14:32" and out[0].end_label == "2020-03-09 10:14:35"
    assert out[1].start_label == "2020-03-09 10:14:34"  # slot 2 was interpolated: grid time, same style
    assert out[0].start == t0


def test_bounded_memory_after_1e5_readings():
    b = ReadingStreamBuffer("s", ["a", "b"], 1.0, 64, 16, 5.0, 3)
    rng = np.random.default_rng(0)
    n, chunk = 100_000, 100
    windows = 0
    for i in range(0, n, chunk):
        t = np.arange(i, i + chunk, dtype=np.float64)
        x = rng.normal(size=(chunk, 2))
        out, why = b.push(Readings("s", t, x.astype(np.float32), ["a", "b"], [""] * chunk), TP, i // chunk)
        windows += len(out)
        # live slots: one record + a window + the tolerance; capacity at most twice that
        assert b.held_slots <= 2 * (chunk + 64 + 16 + 5) and len(b.labels) <= chunk + 64 + 16 + 5
        assert len(b.records) <= 3
    # complete data: every window start 0, 16, ... with start + 63 <= 99999 is emitted
    assert windows == b.stats.windows == 99936 // 16 + 1
    # a jump a year ahead does not allocate the gap; the stream restarts on the grid there
    far = float(n + 365 * 86400)
    out, _ = b.push(Readings("s", far + np.arange(64.0), np.ones((64, 2), np.float32), ["a", "b"],
                             [""] * 64), TP, 10_000)
    assert b.held_slots <= 1000
    assert out and out[0].start == far  # far is a multiple of 16
    # skipped with data: 99952, 99968, 99984 (they hold slots up to 99999) and far-48, far-32,
    # far-16 (they reach into the new data); windows wholly inside the gap are not counted
    assert b.stats.skipped_windows == 6


def test_oldest_needed_advances():
    b = buf(tol=0.0)  # window 4, hop 2
    assert b.oldest_needed() == {}
    feed(b, [0, 1, 2])
    assert b.oldest_needed() == {TP: 0}
    w, _ = feed(b, [3, 4, 5], offset0=3)
    assert [x.key for x in w] == ["s@0", "s@2"]
    assert b.oldest_needed() == {TP: 4}  # next window [4..7] needs slots 4, 5
    assert w[1].sources == {TP: (2, 5)}
    b.push(R([6], [6]), ("other", 3), 100)
    b.push(R([7], [7]), TP, 7)
    assert b.oldest_needed() == {TP: 7, ("other", 3): 100}  # [6..9] needs slots 6 and 7
    b.push(R([8, 9], [8, 9]), TP, 8)
    assert b.oldest_needed() == {TP: 8}


# ---------------------------------------------------------------------------
# randomised comparison with a brute-force reference
# ---------------------------------------------------------------------------
def reference_windows(vals, present, win, hop, tol, max_gap):
    """Windows the rules define for the final data, worked out cell by cell.

    ``vals`` (N, C): NaN = missing value; ``present``: slots that got a reading.
    Returns ([(start, data)], skipped windows holding data).
    """
    slots = np.flatnonzero(present)
    first, newest = int(slots[0]), int(slots[-1])
    n, C = vals.shape
    x = vals.copy()
    x[~present] = np.nan
    state = np.zeros((n, C), dtype=int)  # 0 ok / filled, 1 long, 2 pending
    filled = x.copy()
    for c in range(C):
        t = first
        while t <= newest:
            if np.isfinite(x[t, c]):
                t += 1
                continue
            a = t
            while t <= newest and not np.isfinite(x[t, c]):
                t += 1
            b = t - 1
            left = a - 1 if a > first else None
            right = b + 1 if b < newest else None
            if left is None:
                state[a:b + 1, c] = 1
            elif right is None:
                state[a:b + 1, c] = 1 if newest - left > max_gap else 2
            elif right - left - 1 > max_gap:
                state[a:b + 1, c] = 1
            else:
                for k in range(a, b + 1):
                    filled[k, c] = x[left, c] + (x[right, c] - x[left, c]) * (k - left) / (right - left)
    out, skipped = [], 0
    s = -(-first // hop) * hop
    while s + win - 1 <= newest:
        last = s + win - 1
        due = newest - last > tol
        complete = np.isfinite(x[s:last + 1]).all()
        if not (due or complete):
            break
        if (state[s:last + 1] == 1).any():
            skipped += bool(np.isfinite(x[s:last + 1]).any())
            s += hop
            continue
        if (state[s:last + 1] == 2).any():
            break
        out.append((s, filled[s:last + 1]))
        s += hop
    return out, skipped


@pytest.mark.parametrize("seed", range(12))
def test_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n, C = 160, 2
    win = int(rng.choice([4, 6, 8]))
    hop = int(rng.choice([1, 2, win // 2, win]))
    tol = float(rng.choice([0.0, 1.5, 3.0]))
    max_gap = int(rng.choice([0, 1, 2, 3]))
    start = int(rng.integers(0, 7))
    present = rng.random(n) > 0.12
    present[:start] = False
    present[start] = True
    if seed % 3 == 0:  # an outage longer than the buffer keeps
        a = int(rng.integers(40, 90))
        present[a:a + 40] = False
    vals = np.arange(n, dtype=np.float64)[:, None] * [1.0, -2.0] + rng.normal(size=(n, C))
    vals[rng.random((n, C)) < 0.06] = np.nan
    expected, skipped = reference_windows(vals, present, win, hop, tol, max_gap)
    slots = np.flatnonzero(present)

    def check(b, windows):
        assert [w.key for w in windows] == [f"s@{s}" for s, _ in expected]
        for w, (s, data) in zip(windows, expected):
            np.testing.assert_allclose(w.data, data, rtol=1e-5, atol=1e-4)
        assert b.stats.skipped_windows == skipped and b.stats.too_late == 0

    # one record per reading, in order
    b = buf(win, hop, tol, max_gap, channels=("a", "b"))
    got = []
    for i, t in enumerate(slots):
        got += b.push(R([t], vals[t:t + 1], ("a", "b")), TP, i)[0]
    check(b, got)
    # all readings in one record
    b = buf(win, hop, tol, max_gap, channels=("a", "b"))
    check(b, b.push(R(slots, vals[slots], ("a", "b")), TP, 0)[0])
    # out of order, each reading at most tol slots late (so none is too late)
    keys = slots + rng.uniform(0, np.floor(tol), len(slots)) * (slots > slots[0])
    b = buf(win, hop, tol, max_gap, channels=("a", "b"))
    got = []
    for i, t in enumerate(slots[np.argsort(keys, kind="stable")]):
        got += b.push(R([t], vals[t:t + 1], ("a", "b")), TP, i)[0]
    check(b, got)
