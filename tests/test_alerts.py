"""The one alert rule (streamad.alerts): hand-worked cases and live == offline as a property."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamad.alerts import AlertRule, alert_id, alert_record, smooth
from streamad.windows.base import Window


def _live_events(rule: AlertRule, scores, starts, ends):
    """Feed the live state window by window; (opening indices, closed/open events)."""
    live, opened, events = rule.live(), [], []
    for i, (s, a, b) in enumerate(zip(scores, starts, ends)):
        step = live.update(float(a), float(b), float(s))
        if step.closed is not None:
            events.append(step.closed)
        if step.opened is not None:
            opened.append(i)
    if live.event is not None:
        events.append(live.event)
    return opened, events


def test_smooth_kth_largest_of_last_n():
    s = np.array([1, 5, 2, 0, 7, 7, 1.0])
    np.testing.assert_array_equal(smooth(s, 1, 1), s)
    # 2nd largest of the last 3 (padded with -inf at the start)
    np.testing.assert_array_equal(smooth(s, 2, 3), [-np.inf, 1, 2, 2, 2, 7, 7])


def test_k_of_n_is_not_a_max():
    # 2 of 3 windows over 1.0: only window 5 (scores 5, 0, 5 in its last three)
    scores = np.array([5, 0, 0, 5, 0, 5, 0, 0], float)
    starts = np.arange(8) * 10.0
    rule = AlertRule(1.0, min_windows=2, of_windows=3, cooldown_s=0.0)
    d = rule.decide(scores, starts, starts + 1)
    assert np.flatnonzero(d.trig).tolist() == [5]
    assert np.flatnonzero(d.opens).tolist() == [5]
    assert _live_events(rule, scores, starts, starts + 1)[0] == [5]


def test_cooldown_extends_an_event_hand_worked():
    # audio: 1 s windows every 0.5 s, cooldown 2 s. Windows 0 and 6 trigger: window 6 starts at
    # 3.0 <= 1.0 (end of window 0) + 2.0, so it extends the event; window 7 (start 3.5) would open
    # a new one.
    starts = np.arange(10) * 0.5
    ends = starts + 1.0
    rule = AlertRule(1.0, cooldown_s=2.0)
    scores = np.zeros(10)
    scores[[0, 6]] = 5.0
    d = rule.decide(scores, starts, ends)
    assert np.flatnonzero(d.opens).tolist() == [0]
    assert [(e.first, e.last, e.windows) for e in d.events] == [(0, 6, 2)]
    scores = np.zeros(10)
    scores[[0, 7]] = 5.0
    assert np.flatnonzero(rule.decide(scores, starts, ends).opens).tolist() == [0, 7]
    assert _live_events(rule, scores, starts, ends)[0] == [0, 7]


def test_sensor_case_from_the_review_is_one_event_live_and_offline():
    # configs/sensor.yaml: 60-reading windows at 1 Hz (end = last reading), cooldown 60 s. A
    # triggering window 90 s after the previous one starts within its end + cooldown: one event.
    starts = np.arange(200.0)
    ends = starts + 59
    scores = np.zeros(200)
    scores[[10, 100]] = 3.0
    rule = AlertRule(1.0, cooldown_s=60.0)
    d = rule.decide(scores, starts, ends)
    assert np.flatnonzero(d.opens).tolist() == [10] and len(d.events) == 1
    opened, events = _live_events(rule, scores, starts, ends)
    assert opened == [10] and [(e.first, e.last) for e in events] == [(10, 100)]
    # ... and 130 s later it is a second event (start 140 > 69 + 60)
    scores[100], scores[140] = 0.0, 3.0
    assert np.flatnonzero(rule.decide(scores, starts, ends).opens).tolist() == [10, 140]


def test_event_peak_and_close():
    starts = np.arange(12.0)
    scores = np.array([0, 2, 4, 3, 0, 0, 0, 0, 0, 0, 6, 0], float)
    rule = AlertRule(1.0, cooldown_s=1.5)
    d = rule.decide(scores, starts, starts + 1)
    assert [(e.first, e.last, e.peak, e.windows, e.start, e.end) for e in d.events] == \
        [(1, 3, 4.0, 3, 1.0, 4.0), (10, 10, 6.0, 1, 10.0, 11.0)]
    live = rule.live()
    closed = [live.update(a, a + 1, s).closed for a, s in zip(starts, scores)]
    # the first event closes at the first window starting after 4.0 + 1.5
    assert [i for i, c in enumerate(closed) if c is not None] == [6]


@settings(max_examples=300, deadline=None)
@given(scores=st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=80),
       k=st.integers(1, 4), extra=st.integers(0, 3), cooldown=st.floats(0, 6),
       hop=st.sampled_from([0.25, 0.5, 1.0, 2.0]), window=st.sampled_from([0.5, 1.0, 3.0]),
       threshold=st.floats(-1, 2))
def test_live_policy_equals_offline_events(scores, k, extra, cooldown, hop, window, threshold):
    rule = AlertRule(threshold, min_windows=k, of_windows=k + extra, cooldown_s=cooldown)
    s = np.round(np.array(scores), 1)  # ties on purpose
    starts = np.arange(len(s)) * hop
    ends = starts + window
    d = rule.decide(s, starts, ends)
    opened, events = _live_events(rule, s, starts, ends)
    assert opened == np.flatnonzero(d.opens).tolist()
    assert [(e.first, e.last, e.peak, e.windows) for e in events] == \
        [(e.first, e.last, e.peak, e.windows) for e in d.events]


def test_alert_ids_are_stable_and_records_complete():
    w = Window("lobby", 10.0, 11.0, np.zeros(4), {("audio", 2): (120, 130)}, key="lobby@160000")
    a = alert_record(w, 7.5, 6.5, "gmgan", "gmgan-abc", {"irec": 3.2})
    assert a["alert_id"] == alert_id("lobby@160000", "gmgan-abc") == alert_record(w, 9.0, 1.0, "x", "gmgan-abc")["alert_id"]
    assert a["alert_id"] != alert_id("lobby@168000", "gmgan-abc")
    assert a["window_start_iso"] == "1970-01-01T00:00:10.000Z"
    assert a["sources"] == [{"topic": "audio", "partition": 2, "first_offset": 120, "last_offset": 130}]
    assert a["components"] == {"irec": pytest.approx(3.2)} and "start_label" not in a
