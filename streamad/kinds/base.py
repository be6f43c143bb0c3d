"""The one place where audio and series (and any future input kind) differ.

A :class:`Kind` bundles, for one ``cfg.kind``: the front end, the file loader, the Kafka
record decoder and the per-stream buffer. Everything else (training, offline scoring,
evaluation, the daemon, benchmarks) asks the kind instead of switching on ``cfg.kind``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from streamad.windows.base import Frontend, TopicPartition, Window


class DataError(ValueError):
    """Not enough or unusable training data; one-line message."""


@dataclass
class Recording:
    """One file's signal: audio (samples,) at the config's rate, or series (readings, channels)."""

    name: str
    signal: np.ndarray
    channels: list[str] | None = None
    source: Any = None  # the loader's full record (series: SeriesData with times, labels, beats)


class Kind(ABC):
    name: ClassVar[str]
    min_window: ClassVar[int | None] = None  # shortest window a short training history may shrink to

    @abstractmethod
    def frontend(self, cfg: Any) -> Frontend:
        """A new, unfitted front end for this config."""

    @abstractmethod
    def load(self, cfg: Any, paths: Sequence[str | Path], **opts: Any) -> list[Recording]:
        """Recordings from files / directories (InputError / DataError on bad input)."""

    def prepare(self, cfg: Any, recordings: list[Recording], frontend: Frontend) -> None:
        """Fix what the training data decides before windows are cut (default: nothing)."""

    def labelled(self, recordings: list[Recording]) -> tuple[list[Recording], list[Recording]]:
        """Training recordings -> (normal parts, labelled-anomaly parts) when the files carry
        labels (default: none do)."""
        return recordings, []

    @abstractmethod
    def decode(self, record: Any, model: Any) -> Any:
        """A Kafka record -> payload with ``stream_id`` (PayloadError with the reason)."""

    @abstractmethod
    def new_buffer(self, cfg: Any, model: Any, stream_id: str) -> Any:
        """An empty per-stream window buffer."""

    @abstractmethod
    def push(self, buffer: Any, payload: Any, tp: TopicPartition, offset: int,
             ref: Any = None) -> tuple[list[Window], list[str]]:
        """Add a decoded payload to its buffer: (complete windows, rejection reasons). ``ref`` (the
        record) comes back in :meth:`rejected` if the buffer later rejects this payload."""

    def rejected(self, buffer: Any) -> list[tuple[Any, str]]:
        """(ref, reason) of earlier payloads the buffer has rejected since the last call (default: none)."""
        return []

    @abstractmethod
    def newest(self, buffer: Any) -> float | None:
        """Stream time (epoch seconds) of the newest sample / reading the buffer has accepted."""

    @abstractmethod
    def tallies(self, buffer: Any) -> dict[str, int]:
        """Running totals of the buffer: ``duplicates`` and ``dropped`` samples/readings, ``steps_back``,
        ``accepted`` (chunks / readings placed)."""

    def held(self, buffer: Any) -> int:
        """Samples / readings held that no window has used yet (dropped if the stream is forgotten)."""
        return 0

    def shrink_window(self, cfg: Any, window: int) -> None:
        """Use windows of ``window`` samples/readings (>= ``min_window``; short training history)."""
        raise NotImplementedError(f"{self.name} windows cannot shrink")

    def window_shape(self, model: Any) -> tuple[int, ...]:
        """Shape of one window's data (default: samples)."""
        return (model.frontend.window,)

    def end_offset(self, frontend: Frontend) -> int:
        """A window's ``end`` time is its start + this many samples / readings (default: just
        after its last sample)."""
        return frontend.window

    def times(self, frontend: Frontend, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) in seconds of the windows cut at sample / reading positions ``starts``, as the
        daemon's windows have them: the span after the window's context (``lead``) to :meth:`end_offset`."""
        starts = np.asarray(starts)
        return (starts + frontend.lead) / frontend.rate, (starts + self.end_offset(frontend)) / frontend.rate

    @abstractmethod
    def rows(self, model: Any, rec: Recording, starts: np.ndarray, scores: np.ndarray,
             alerts: np.ndarray, **opts: Any) -> Iterator[dict]:
        """``streamad score`` output: one JSON-able dict per window."""
