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

from streamad.alerts import AlertRule, LiveRule, alert_record
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
    last_seen: float = field(default_factory=time.monotonic)
    context: deque = field(default_factory=deque)  # sources of the last n-1 windows
    hold: dict = field(default_factory=dict)  # offsets an open event needs for a faithful replay

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

    # -- records -> windows ----------------------------------------------------------
    def accept(self, record: Any, tp: tuple[str, int]) -> tuple[list[tuple[StreamKey, Window]], list[str]]:
        """Decode one record into its stream's buffer: (complete windows, rejection reasons).

        Raises PayloadError for a record that cannot be decoded."""
        payload = self.kind.decode(record, self.model)
        key = (tp, payload.stream_id)
        st = self.streams.get(key)
        if st is None:
            st = self.streams[key] = StreamState(self.kind.new_buffer(self.cfg, self.model, payload.stream_id),
                                                 self.rule.live())
        st.last_seen = time.monotonic()
        windows, rejects = self.kind.push(st.buffer, payload, tp, record.offset)
        return [(key, w) for w in windows], rejects

    # -- windows -> scores -> alerts -------------------------------------------------
    def score(self, windows: list[Window]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return self.model.score_windows(windows, self.cfg.worker.max_batch, self.cfg.worker.precision)

    def decide(self, items: list[tuple[StreamKey, Window]], scores: np.ndarray,
               comps: dict[str, np.ndarray]) -> list[dict]:
        """Apply the alert rule per stream, in window order; the alerts of opened events."""
        alerts = []
        for i, (key, w) in enumerate(items):
            st = self.streams.get(key)
            if st is None:  # the stream was dropped (rebalance) while its windows were scored
                continue
            step = st.rule.update(w.start, w.end, float(scores[i]))
            if step.closed is not None or st.rule.event is None:
                st.hold = {}
            if step.opened is not None:
                st.hold = _min_offsets(w.sources, *st.context)
                alerts.append(alert_record(w, scores[i], self.rule.threshold, self.model.name, self.model.version,
                                           {k: float(v[i]) for k, v in comps.items()}))
            if self.rule.of_windows > 1:
                st.context.append(w.sources)
                while len(st.context) > self.rule.of_windows - 1:
                    st.context.popleft()
        return alerts

    # -- offsets and stream lifetime -------------------------------------------------
    def needed_offsets(self) -> dict[tuple[str, int], int]:
        return _min_offsets(*(st.needed() for st in self.streams.values()))

    def drop(self, pred: Callable[[StreamKey, StreamState], bool]) -> int:
        gone = [k for k, st in self.streams.items() if pred(k, st)]
        for k in gone:
            del self.streams[k]
        return len(gone)

    def evict_idle(self, idle_s: float, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        return self.drop(lambda _k, st: now - st.last_seen > idle_s)
