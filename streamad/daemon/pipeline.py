"""One config's pipeline: decode -> per-stream buffer -> batched scoring -> alert rule.

Streams are keyed by (topic, partition, stream id), so a stream moved by a rebalance never
mixes with another partition's buffer. Per stream the pipeline keeps the window buffer, the
live alert rule and the offsets a faithful replay needs (:meth:`Pipeline.needed_offsets`):
those whose samples a future window still uses, those of the last n-1 windows (the k-of-n
context) and, while an event is open, those of its opening window and its context — so a
daemon restarted from the last commit re-creates the same windows, decisions and alert ids.
"""
from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from streamad.alerts import AlertRule, LiveRule, alert_record, closed_record
from streamad.daemon.drift import Drift
from streamad.evidence import EvidenceRecorder
from streamad.config import Config, ConfigError
from streamad.kinds import kind_of
from streamad.model import AnomalyModel
from streamad.windows.base import Window

StreamKey = tuple[tuple[str, int], str]  # ((topic, partition), stream id)


def _min_offsets(*sources: dict) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for src in sources:
        for tp, off in src.items():
            off = off[0] if isinstance(off, tuple) else off
            out[tp] = min(off, out.get(tp, off))
    return out


@dataclass
class StreamState:
    buffer: Any
    rule: LiveRule
    drift: Drift
    last_seen: float = field(default_factory=time.monotonic)
    context: deque = field(default_factory=deque)  # sources of the last n-1 windows
    hold: dict = field(default_factory=dict)  # offsets an open event needs for a faithful replay
    alert: dict | None = None  # the alert of the open event (its closed record pairs with it)

    def needed(self) -> dict[tuple[str, int], int]:
        return _min_offsets(self.buffer.oldest_needed(), self.hold, *self.context)


class Pipeline:
    """Everything specific to one config: its model, kind, rule and streams."""

    def __init__(self, name: str, cfg: Config, model: AnomalyModel):
        if model.cfg.kind != cfg.kind:
            raise ConfigError(f"kind: config is {cfg.kind!r} but model {cfg.model.path} is {model.cfg.kind!r}")
        self.name, self.cfg, self.model = name, cfg, model
        self.label = Path(name).stem or name  # the `pipeline` label of its metrics (config file stem)
        self.kind = kind_of(cfg)
        self.rule = AlertRule.for_model(model, cfg.alerts.cooldown_s)
        self.streams: dict[StreamKey, StreamState] = {}
        cal = model.calibration
        self.normal_mean = float((cal.holdout or {}).get("mean", 0.0)) if cal is not None else 0.0
        a = cfg.alerts
        self.evidence = EvidenceRecorder(a.evidence_dir, model, self.kind.name == "audio", a.evidence_pre_s,
                                         a.evidence_post_s, a.evidence_max_s) if a.evidence_dir else None

    # -- records -> windows ----------------------------------------------------------
    def accept(self, record: Any, tp: tuple[str, int]) -> tuple[list[tuple[StreamKey, Window]], list[str]]:
        """Decode one record into its stream's buffer: (complete windows, rejection reasons).

        Raises PayloadError for a record that cannot be decoded."""
        payload = self.kind.decode(record, self.model)
        key = (tp, payload.stream_id)
        st = self.streams.get(key)
        if st is None:
            st = self.streams[key] = StreamState(self.kind.new_buffer(self.cfg, self.model, payload.stream_id),
                                                 self.rule.live(), Drift(self.cfg.alerts.drift_halflife_s))
        st.last_seen = time.monotonic()
        if self.evidence is not None and self.kind.name == "audio":
            self.evidence.samples(key, payload.timestamp, payload.samples)
        windows, rejects = self.kind.push(st.buffer, payload, tp, record.offset)
        return [(key, w) for w in windows], rejects

    # -- windows -> scores -> alerts -------------------------------------------------
    def score(self, windows: list[Window]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.model.score_windows(windows, self.cfg.worker.max_batch)

    def decide(self, items: list[tuple[StreamKey, Window]], scores: np.ndarray,
               comps: dict[str, np.ndarray]) -> list[dict]:
        """Apply the alert rule per stream, in window order: the records to publish (alerts of
        opened events, closed records of ended ones)."""
        out: list[dict] = []
        a = self.cfg.alerts
        for i, (key, w) in enumerate(items):
            st = self.streams.get(key)
            if st is None:  # the stream was dropped (rebalance) while its windows were scored
                continue
            score = float(scores[i])
            if a.adapt_threshold:
                st.rule.offset = st.drift.offset(self.normal_mean, a.adapt_warmup_s, a.adapt_max_offset)
            step = st.rule.update(w.start, w.end, score)
            st.drift.update(w.end, min(score, self.rule.threshold + a.adapt_max_offset))  # spikes clipped
            if step.closed is not None:
                out.extend(self._closed(key, st, step.closed))
            if st.rule.event is None:
                st.hold = {}
            if step.opened is not None:
                st.hold = _min_offsets(w.sources, *st.context)
                st.alert = alert_record(w, score, self.rule.threshold + st.rule.offset, self.model.name,
                                        self.model.version, {k: float(v[i]) for k, v in comps.items()})
                if self.evidence is not None:
                    self.evidence.alert(key, st.alert, w)
                out.append(st.alert)
            if self.rule.of_windows > 1:
                st.context.append(w.sources)
                while len(st.context) > self.rule.of_windows - 1:
                    st.context.popleft()
        if self.evidence is not None:
            self.evidence.settle()
        return out

    def _closed(self, key: StreamKey, st: StreamState, event) -> list[dict]:
        alert, st.alert = st.alert, None
        if alert is None:  # opened before a restart: the replay re-creates it from the hold
            return []
        if self.evidence is not None:
            self.evidence.closed(key, alert, event)
        return [closed_record(alert, event)]

    # -- offsets and stream lifetime -------------------------------------------------
    def needed_offsets(self) -> dict[tuple[str, int], int]:
        return _min_offsets(*(st.needed() for st in self.streams.values()))

    def drop(self, pred: Callable[[StreamKey, StreamState], bool], close: bool = True) -> list[dict]:
        """Forget the streams ``pred`` selects; with ``close``, the closed records of their open
        events (not on a rebalance: the partition's new owner replays and closes them)."""
        closed = []
        for k in [k for k, st in self.streams.items() if pred(k, st)]:
            st = self.streams.pop(k)
            if close and st.rule.event is not None:
                closed.extend(self._closed(k, st, st.rule.event))
            if self.evidence is not None:
                self.evidence.forget(k)
        return closed

    def evict_idle(self, idle_s: float, now: float | None = None) -> tuple[int, list[dict]]:
        """Streams silent for ``idle_s``: (how many were evicted, closed records to publish)."""
        now = time.monotonic() if now is None else now
        n = sum(1 for st in self.streams.values() if now - st.last_seen > idle_s)
        return n, self.drop(lambda _k, st: now - st.last_seen > idle_s) if n else []

    def drifts(self) -> dict[str, float]:
        """Per stream id: its normal-score drift (see streamad.daemon.drift)."""
        out = {}
        for (_tp, sid), st in self.streams.items():
            d = st.drift.drift(self.normal_mean)
            if d is not None:
                out[sid] = d
        return out
