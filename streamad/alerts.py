"""From window scores to alert records: k-of-n smoothing, one alert per event.

Per stream, a window *triggers* when the k-th largest of the last n scores is
above the model's threshold (the rule the threshold was calibrated with). The
first triggering window opens an event and publishes one alert; later
triggering windows that start within ``cooldown_s`` of the previous triggering
window's end extend the same event and publish nothing.

Alert ids are stable (stream, window position, model version): a daemon that
re-scores windows after a crash re-publishes the same id, so consumers can
de-duplicate an at-least-once stream.
"""
from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from streamad.windows.buffers import Window


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _StreamState:
    recent: deque = field(default_factory=deque)
    open_until: float = float("-inf")
    # While an event is open, the offsets of its opening window stay uncommitted, so a
    # restarted daemon re-creates the same alert (same id) instead of a second one.
    hold: dict = field(default_factory=dict)


class AlertPolicy:
    def __init__(self, threshold: float, min_windows: int = 1, of_windows: int = 1, cooldown_s: float = 2.0,
                 model_name: str = "", model_version: str = ""):
        self.threshold = threshold
        self.k, self.n = min_windows, of_windows
        self.cooldown = cooldown_s
        self.model_name, self.model_version = model_name, model_version
        self.streams: dict[str, _StreamState] = {}

    def forget(self, stream_key: str) -> None:
        self.streams.pop(stream_key, None)

    def update(self, stream_key: str, window: Window, score: float,
               components: dict[str, float] | None = None) -> dict[str, Any] | None:
        st = self.streams.setdefault(stream_key, _StreamState(deque(maxlen=self.n)))
        if window.start > st.open_until:
            st.hold = {}
        st.recent.append(score)
        if len(st.recent) < self.k:
            return None
        kth = sorted(st.recent, reverse=True)[self.k - 1]
        if not kth > self.threshold:
            return None
        new_event = window.start > st.open_until
        st.open_until = max(st.open_until, window.end + self.cooldown)
        if not new_event:
            return None
        st.hold = {tp: lo for tp, (lo, _hi) in window.sources.items()}
        return self.record(window, score, components)

    def held_offsets(self) -> dict[tuple[str, int], int]:
        """Smallest offset per partition that an open event still needs for a faithful replay."""
        out: dict[tuple[str, int], int] = {}
        for st in self.streams.values():
            for tp, off in st.hold.items():
                out[tp] = min(off, out.get(tp, off))
        return out

    def record(self, window: Window, score: float, components: dict[str, float] | None) -> dict[str, Any]:
        aid = hashlib.sha1(f"{window.key}|{self.model_version}".encode()).hexdigest()[:20]
        now = time.time()
        rec: dict[str, Any] = {
            "alert_id": aid,
            "stream_id": window.stream_id,
            "window_start": window.start,
            "window_end": window.end,
            "window_start_iso": iso(window.start),
            "window_end_iso": iso(window.end),
            "detected_at": now,
            "detected_at_iso": iso(now),
            "score": float(score),
            "threshold": float(self.threshold),
            "model": {"name": self.model_name, "version": self.model_version},
            "components": {k: float(v) for k, v in (components or {}).items()},
            "sources": [{"topic": t, "partition": p, "first_offset": lo, "last_offset": hi}
                        for (t, p), (lo, hi) in sorted(window.sources.items())],
        }
        if window.start_label is not None:
            rec["start_label"], rec["end_label"] = window.start_label, window.end_label
        return rec


def decide(scores: np.ndarray, starts: np.ndarray, ends: np.ndarray, threshold: float, k: int = 1,
           n: int = 1, cooldown_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Offline twin of AlertPolicy for one recording: (triggering windows, alert-opening windows)."""
    from streamad.calibrate import smooth

    trig = smooth(scores, k, n) > threshold
    opens = np.zeros(len(scores), dtype=bool)
    open_until = float("-inf")
    for i in np.nonzero(trig)[0]:
        if starts[i] > open_until:
            opens[i] = True
        open_until = max(open_until, ends[i] + cooldown_s)
    return trig, opens
