"""Offline scoring: one function scores a recording's windows; ``streamad score`` prints them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from streamad.alerts import AlertRule
from streamad.kinds import kind_of
from streamad.model import AnomalyModel
from streamad.windows.base import window_starts, windows_at


@dataclass
class RecordingScores:
    starts: np.ndarray  # window start positions (samples / readings)
    scores: np.ndarray  # calibrated score per window
    components: dict[str, np.ndarray]  # raw score components per window

    def times(self, model: AnomalyModel) -> tuple[np.ndarray, np.ndarray]:
        return window_times(model, self.starts)


def window_times(model: AnomalyModel, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) in seconds of the windows cut at sample / reading positions ``starts``, as the
    daemon's windows have them: the span after the window's context (``lead``) to ``Kind.end_offset``."""
    return kind_of(model.cfg).times(model.frontend, starts)


def score_recording(model: AnomalyModel, signal: np.ndarray, starts: np.ndarray | None = None,
                    batch: int = 512, pbar: Any = None) -> RecordingScores:
    """Scores of the windows ``signal[s:s + window]``: every full window at the model's hop, or
    at the given ``starts``. Windows are cut batch by batch (a long recording never sits in
    memory as windows)."""
    fe = model.frontend
    starts = window_starts(len(signal), fe.window, fe.hop) if starts is None else np.asarray(starts, np.int64)
    scores, comps = [], []
    for i in range(0, len(starts), batch):
        s, c = model.score(windows_at(signal, fe.window, starts[i:i + batch]), batch)
        scores.append(s)
        comps.append(c)
        if pbar is not None:
            pbar.update(len(s))
    if not scores:
        return RecordingScores(starts, np.zeros(0), {})
    return RecordingScores(starts, np.concatenate(scores), {k: np.concatenate([c[k] for c in comps]) for k in comps[0]})


def score_files(model_dir: str | Path, files: list[str], device: str = "cpu", **opts: Any) -> Iterator[dict]:
    """``streamad score``: one dict per window of every file, with the alert rule applied."""
    model = AnomalyModel.load(model_dir, device=device)
    kind = kind_of(model.cfg)
    rule = AlertRule.for_model(model)
    for rec in kind.load(model.cfg, files, channels=model.cfg.series.channels or None, **opts):
        r = score_recording(model, rec.signal)
        st, en = r.times(model)
        yield from kind.rows(model, rec, r.starts, r.scores, rule.decide(r.scores, st, en).trig, **opts)
