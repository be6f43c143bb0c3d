"""Offline scoring of files with a saved model (``streamad score``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from streamad.alerts import decide
from streamad.pipeline import AnomalyModel
from streamad.windows.audio import frame_windows


def _label(s: str) -> Any:
    try:
        return float(s) if any(c in s for c in ".eE") else int(s)
    except ValueError:
        return s


def windowed_scores(model: AnomalyModel, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window start indices, scores) of every full window of one recording."""
    fe = model.frontend
    W = frame_windows(signal, fe.window, fe.hop)
    scores, _ = model.score(W) if len(W) else (np.zeros(0), {})
    return np.arange(len(W)) * fe.hop, scores


def alerts_for(model: AnomalyModel, scores: np.ndarray, starts_s: np.ndarray, ends_s: np.ndarray) -> np.ndarray:
    cal = model.calibration
    trig, _ = decide(scores, starts_s, ends_s, model.threshold, cal.min_windows, cal.of_windows)
    return trig


def score_files(model_dir: str | Path, files: list[str], device: str = "cpu", time_column: str | None = None,
                value_columns: list[str] | None = None, label_column: str | None = None) -> Iterator[dict]:
    model = AnomalyModel.load(model_dir, device=device)
    fe = model.frontend
    if model.cfg.kind == "audio":
        from streamad.io.files import list_audio, load_audio

        for f in list_audio(files):
            sig = load_audio(f, fe.sr)
            idx, scores = windowed_scores(model, sig)
            st, en = idx / fe.sr, (idx + fe.window) / fe.sr
            for s, e, sc, al in zip(st, en, scores, alerts_for(model, scores, st, en)):
                yield {"file": str(f), "start_s": round(float(s), 6), "end_s": round(float(e), 6),
                       "score": float(sc), "alert": bool(al)}
        return
    from streamad.io.seriesfiles import fill_missing, load_series_files

    for d in load_series_files(files, time_column=time_column, value_columns=value_columns,
                               label_column=label_column, channels=model.cfg.series.channels):
        idx, scores = windowed_scores(model, fill_missing(d.values))
        last = idx + fe.window - 1
        trig = alerts_for(model, scores, d.times[idx], d.times[last]) if len(idx) else []
        for i, j, sc, al in zip(idx, last, scores, trig):
            if time_column:
                start, end = _label(d.time_labels[i]), _label(d.time_labels[j])
            else:
                start, end = float(d.times[i]), float(d.times[j])
            yield {"file": d.name, "start": start, "end": end, "score": float(sc), "alert": bool(al)}
