"""Numeric series: JSON readings -> slot buffers on the absolute grid -> 32x32 patches."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from streamad.io.readings import decode_readings
from streamad.io.seriesfiles import fill_missing, load_series_files
from streamad.kinds.base import DataError, Kind, Recording
from streamad.windows.series import SeriesFrontend
from streamad.windows.series_buffer import ReadingStreamBuffer
from streamad.windows.series_gate import GatedReadingBuffer


def _label(s: str) -> Any:
    """A time label as it appears in the CSV, as a JSON number when it is one."""
    try:
        return float(s) if any(c in s for c in ".eE") else int(s)
    except ValueError:
        return s


class SeriesKind(Kind):
    name = "series"
    min_window = 16

    def frontend(self, cfg: Any) -> SeriesFrontend:
        return SeriesFrontend(cfg.series)

    def load(self, cfg: Any, paths, time_column: str | None = None, value_columns: list[str] | None = None,
             label_column: str | None = None, channels: list[str] | None = None, **_: Any) -> list[Recording]:
        if channels is None and cfg.series.channels and not value_columns:
            channels = cfg.series.channels
        datas = load_series_files(list(paths), time_column=time_column, value_columns=value_columns,
                                  label_column=label_column, channels=channels)
        return [Recording(d.name, fill_missing(d.values), d.channels, d) for d in datas]

    def prepare(self, cfg: Any, recordings: list[Recording], frontend: SeriesFrontend) -> None:
        first = recordings[0]
        for r in recordings[1:]:
            if r.channels != first.channels:
                raise DataError(f"{r.name}: channels {r.channels} differ from {first.name}'s {first.channels}")
        if first.channels:
            cfg.series.channels = list(first.channels)
        try:
            frontend.fit_channels([r.signal for r in recordings])
        except ValueError as e:
            raise DataError(str(e)) from None

    def decode(self, record: Any, model: Any):
        return decode_readings(record.key, record.value, record.headers, model.cfg.series.channels)

    def new_buffer(self, cfg: Any, model: Any, stream_id: str) -> GatedReadingBuffer:
        s, fe = cfg.series, model.frontend

        def make() -> ReadingStreamBuffer:
            return ReadingStreamBuffer(stream_id, model.cfg.series.channels, fe.rate, fe.window, fe.hop,
                                       s.late_tolerance_s, s.max_gap)

        ahead = max(s.late_tolerance_s, (s.max_gap + 1) / fe.rate)  # a jump beyond a gap that interpolates
        return GatedReadingBuffer(make, ahead, s.late_tolerance_s + fe.window / fe.rate)

    def push(self, buffer: GatedReadingBuffer, payload, tp, offset, ref: Any = None):
        return buffer.push(payload, tp, offset, ref)

    def rejected(self, buffer: GatedReadingBuffer) -> list[tuple[Any, str]]:
        out, buffer.rejected = buffer.rejected, []
        return out

    def newest(self, buffer: GatedReadingBuffer) -> float | None:
        return buffer.newest_time

    def tallies(self, buffer: GatedReadingBuffer) -> dict[str, int]:
        return buffer.tallies()

    def held(self, buffer: GatedReadingBuffer) -> int:
        return buffer.held

    def shrink_window(self, cfg: Any, window: int) -> None:
        cfg.series.window = int(window)
        cfg.series.hop = min(cfg.series.hop, int(window))

    def window_shape(self, model: Any) -> tuple[int, ...]:
        return (model.frontend.window, len(model.cfg.series.channels))

    def end_offset(self, frontend: SeriesFrontend) -> int:
        return frontend.window - 1  # a series window ends at its last reading

    def rows(self, model: Any, rec: Recording, starts, scores, alerts, time_column: str | None = None,
             **_: Any) -> Iterator[dict]:
        d, last = rec.source, np.asarray(starts) + model.frontend.window - 1
        for i, j, sc, al in zip(np.asarray(starts).tolist(), last.tolist(), scores, alerts):
            if time_column:
                start, end = _label(d.time_labels[i]), _label(d.time_labels[j])
            else:
                start, end = float(d.times[i]), float(d.times[j])
            yield {"file": rec.name, "start": start, "end": end, "score": float(sc), "alert": bool(al)}
