"""Tables (CSV / NPY / NPZ / MAT): one row = one window -> a scaled feature vector.

Offline only: ``streamad train`` and ``streamad score`` (one JSON object per row:
``{"file", "row", "score", "alert"}``); a tabular model does not run in the daemon. The
input columns and the categories of categorical columns are learned from the training
files and stored in the model's config (``tabular.columns`` / ``tabular.categories``).
Training rows labelled 1 in ``tabular.label_column`` become labelled anomalies for
(semi-)supervised detectors and never reach the front end or the calibration.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from streamad.io.codecs import PayloadError
from streamad.io.tabular import load_tables
from streamad.kinds.base import DataError, Kind, Recording
from streamad.windows.tabular import TabularFrontend


class TabularKind(Kind):
    name = "tabular"

    def frontend(self, cfg: Any) -> TabularFrontend:
        return TabularFrontend(cfg.tabular)

    def load(self, cfg: Any, paths, label_column: str | None = None, **_: Any) -> list[Recording]:
        if label_column is not None:
            cfg.tabular.label_column = label_column
        return [Recording(t.name, t.X, t.features, t) for t in load_tables(list(paths), cfg.tabular)]

    def labelled(self, recordings: list[Recording]) -> tuple[list[Recording], list[Recording]]:
        normal, anomalous = [], []
        for r in recordings:
            y = r.source.y if r.source is not None else None
            if y is None:
                normal.append(r)
                continue
            normal.append(Recording(r.name, r.signal[y == 0], r.channels, r.source))
            if (y == 1).any():
                anomalous.append(Recording(r.name + " (label 1)", r.signal[y == 1], r.channels, r.source))
        return [r for r in normal if len(r.signal)], anomalous

    def prepare(self, cfg: Any, recordings: list[Recording], frontend: TabularFrontend) -> None:
        """Shuffle the training rows (seeded) so the held-back calibration rows are a random
        sample, not the end of a possibly sorted file."""
        if not recordings:
            raise DataError("no normal training rows")
        rng = np.random.default_rng(cfg.train.seed)
        for r in recordings:
            r.signal = r.signal[rng.permutation(len(r.signal))]

    def decode(self, record: Any, model: Any):
        raise PayloadError("kind tabular scores files (streamad score), not streams")

    def new_buffer(self, cfg: Any, model: Any, stream_id: str):
        from streamad.config import ConfigError

        raise ConfigError("kind: tabular models score files (streamad score); the daemon does not run them")

    def push(self, buffer: Any, payload: Any, tp, offset, ref: Any = None):
        raise PayloadError("kind tabular scores files (streamad score), not streams")

    def newest(self, buffer: Any) -> float | None:
        return None  # no streams (see push)

    def tallies(self, buffer: Any) -> dict[str, int]:
        return {"duplicates": 0, "dropped": 0, "steps_back": 0, "accepted": 0}

    def window_shape(self, model: Any) -> tuple[int, ...]:
        return (1, len(model.frontend.center))

    def end_offset(self, frontend: TabularFrontend) -> int:
        return 1

    def rows(self, model: Any, rec: Recording, starts, scores, alerts, **_: Any) -> Iterator[dict]:
        for s, sc, al in zip(np.asarray(starts).tolist(), scores, alerts):
            yield {"file": rec.name, "row": int(s), "score": float(sc), "alert": bool(al)}
