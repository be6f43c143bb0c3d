"""The alert rule, in one place: k-of-n smoothing, one alert per event, cooldown.

Per stream, windows arrive in time order with a score. A window **triggers** when the k-th
largest of the last n scores (itself included; ``min_windows`` of ``of_windows``) is above
the threshold — the statistic the threshold was calibrated on (:func:`smooth`). A triggering
window **opens an event** unless it starts within ``cooldown_s`` after the end of the previous
triggering window; then it **extends** the open event. An event **closes** when a window
starts more than ``cooldown_s`` after the end of its last triggering window (or when the
stream ends). One alert is published per event, for its opening window.

:meth:`AlertRule.decide` applies the rule to a whole recording at once (``streamad score``,
``eval``, the series evaluation, calibration); :meth:`AlertRule.live` gives the per-stream
state the daemon feeds window by window. Both produce the same events (property-tested).

A window whose score is not finite (NaN, inf: the daemon counts and logs it) does not enter the
rule at all: it neither triggers nor takes a place among the last n scores.

Alert ids are stable (stream, window position, model version), so a daemon that re-scores a
window after a crash re-publishes the same id and consumers can de-duplicate.
"""
from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamad.timelabels import iso_utc
from streamad.windows.base import Window


def smooth(scores: np.ndarray, k: int, n: int) -> np.ndarray:
    """k-th largest of the last n scores at each position (k = n = 1: identity)."""
    s = np.asarray(scores, dtype=np.float64)
    if n <= 1 or len(s) == 0:
        return s.copy()
    pad = np.concatenate([np.full(n - 1, -np.inf), s])
    view = np.lib.stride_tricks.sliding_window_view(pad, n)
    return np.sort(view, axis=1)[:, n - k]


@dataclass
class Event:
    """One alert event: windows ``first`` (opening) .. ``last`` (last triggering), by index."""

    first: int
    last: int
    start: float  # start of the opening window
    end: float  # end of the last triggering window
    peak: float  # highest score of a triggering window
    windows: int = 1  # triggering windows in the event

    def extend(self, i: int, end: float, score: float) -> None:
        self.last, self.end = i, end
        self.peak = max(self.peak, score)
        self.windows += 1


@dataclass
class Decision:
    trig: np.ndarray  # bool per window: triggers
    opens: np.ndarray  # bool per window: opens an event (publishes the alert)
    events: list[Event]


@dataclass(frozen=True)
class AlertRule:
    threshold: float
    min_windows: int = 1
    of_windows: int = 1
    cooldown_s: float = 0.0

    @classmethod
    def for_model(cls, model: Any, cooldown_s: float | None = None) -> "AlertRule":
        """The model's calibrated threshold and k-of-n, the config's cooldown."""
        cal = model.calibration
        k, n = (cal.min_windows, cal.of_windows) if cal is not None else (1, 1)
        cool = model.cfg.alerts.cooldown_s if cooldown_s is None else cooldown_s
        return cls(float(model.threshold), k, n, float(cool))

    def decide(self, scores: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Decision:
        """The rule over one recording's windows (in time order)."""
        scores = np.asarray(scores, dtype=np.float64)
        ok = np.isfinite(scores)
        if not ok.all():  # non-finite windows do not enter the rule
            idx = np.flatnonzero(ok)
            d = self.decide(scores[idx], np.asarray(starts)[idx], np.asarray(ends)[idx])
            trig, opens = np.zeros(len(scores), dtype=bool), np.zeros(len(scores), dtype=bool)
            trig[idx], opens[idx] = d.trig, d.opens
            for ev in d.events:
                ev.first, ev.last = int(idx[ev.first]), int(idx[ev.last])
            return Decision(trig, opens, d.events)
        trig = smooth(scores, self.min_windows, self.of_windows) > self.threshold
        opens = np.zeros(len(trig), dtype=bool)
        events: list[Event] = []
        for i in np.flatnonzero(trig).tolist():
            ev = events[-1] if events else None
            if ev is not None and starts[i] <= ev.end + self.cooldown_s:
                ev.extend(i, float(ends[i]), float(scores[i]))
            else:
                opens[i] = True
                events.append(Event(i, i, float(starts[i]), float(ends[i]), float(scores[i])))
        return Decision(trig, opens, events)

    def live(self) -> "LiveRule":
        return LiveRule(self)


@dataclass
class Step:
    triggered: bool
    opened: Event | None = None  # the event this window opened (publish its alert)
    closed: Event | None = None  # an event that ended before this window


@dataclass
class LiveRule:
    """Per-stream state of the rule, fed one window at a time (the daemon's side).

    ``offset`` raises this stream's threshold (per-stream drift adjustment, off by default)."""

    rule: AlertRule
    recent: deque = field(default_factory=deque)
    event: Event | None = None
    seen: int = 0
    offset: float = 0.0

    def update(self, start: float, end: float, score: float) -> Step:
        if not math.isfinite(score):  # does not enter the rule
            return Step(False)
        r, i = self.rule, self.seen
        self.seen += 1
        self.recent.append(score)
        if len(self.recent) > r.of_windows:
            self.recent.popleft()
        closed = self.close_before(start)
        kth = sorted(self.recent, reverse=True)[r.min_windows - 1] if len(self.recent) >= r.min_windows \
            else -math.inf
        if not kth > r.threshold + self.offset:
            return Step(False, closed=closed)
        if self.event is not None:
            self.event.extend(i, end, score)
            return Step(True, closed=closed)
        self.event = Event(i, i, start, end, score)
        return Step(True, opened=self.event, closed=closed)

    def close_before(self, start: float) -> Event | None:
        """Close the open event if a window starting at ``start`` is past its cooldown."""
        ev = self.event
        if ev is not None and start > ev.end + self.rule.cooldown_s:
            self.event = None
            return ev
        return None


def alert_id(window_key: str, model_version: str) -> str:
    return hashlib.sha1(f"{window_key}|{model_version}".encode()).hexdigest()[:20]


def alert_record(window: Window, score: float, threshold: float, model_name: str, model_version: str,
                 components: dict[str, float] | None = None) -> dict[str, Any]:
    """The alert published for an event's opening window (README "Alerts (output)")."""
    now = time.time()
    rec: dict[str, Any] = {
        "type": "alert",
        "alert_id": alert_id(window.key, model_version),
        "stream_id": window.stream_id,
        "window_start": window.start,
        "window_end": window.end,
        "window_start_iso": iso_utc(window.start),
        "window_end_iso": iso_utc(window.end),
        "detected_at": now,
        "detected_at_iso": iso_utc(now),
        "score": float(score),
        "threshold": float(threshold),
        "model": {"name": model_name, "version": model_version},
        "components": {k: float(v) for k, v in (components or {}).items()},
        "sources": [{"topic": t, "partition": p, "first_offset": lo, "last_offset": hi}
                    for (t, p), (lo, hi) in sorted(window.sources.items())],
    }
    if window.start_label is not None:
        rec["start_label"], rec["end_label"] = window.start_label, window.end_label
    return rec


def closed_record(alert: dict[str, Any], event: Event) -> dict[str, Any]:
    """The record that closes an event, paired with its alert by ``alert_id``.

    ``event_start``/``event_end`` span the opening window's start to the last triggering window's
    end (stream time); ``windows_over_threshold`` counts the triggering windows."""
    now = time.time()
    rec = {"type": "event_closed", "alert_id": alert["alert_id"], "stream_id": alert["stream_id"],
           "event_start": event.start, "event_end": event.end, "event_start_iso": iso_utc(event.start),
           "event_end_iso": iso_utc(event.end), "duration_s": round(event.end - event.start, 6),
           "peak_score": float(event.peak), "windows_over_threshold": int(event.windows),
           "threshold": alert["threshold"], "model": alert["model"], "closed_at": now, "closed_at_iso": iso_utc(now)}
    for k in ("evidence", "start_label"):
        if k in alert:
            rec[k] = alert[k]
    return rec
