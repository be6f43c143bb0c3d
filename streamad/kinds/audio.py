"""Audio: raw PCM chunks -> sample buffers on the absolute grid -> log-mel patches."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from streamad.io.codecs import PayloadError, decode_audio
from streamad.io.files import InputError, list_audio, load_audio
from streamad.kinds.base import Kind, Recording
from streamad.windows.audio import LogMelFrontend
from streamad.windows.audio_buffer import AudioStreamBuffer


class AudioKind(Kind):
    name = "audio"

    def frontend(self, cfg: Any) -> LogMelFrontend:
        return LogMelFrontend(cfg.audio)

    def load(self, cfg: Any, paths, **_: Any) -> list[Recording]:
        files = list_audio(list(paths))
        if not files:
            raise InputError(f"no audio files found in {', '.join(map(str, paths))}")
        return [Recording(str(f), load_audio(f, cfg.audio.sample_rate)) for f in files]

    def decode(self, record: Any, model: Any):
        chunk = decode_audio(record.key, record.value, record.headers)
        if chunk.sample_rate != model.frontend.sr:
            raise PayloadError(f"sample_rate {chunk.sample_rate} does not match the model's {model.frontend.sr}")
        return chunk

    def new_buffer(self, cfg: Any, model: Any, stream_id: str) -> AudioStreamBuffer:
        fe = model.frontend
        tol = int(round(cfg.audio.gap_tolerance_s * fe.sr))
        return AudioStreamBuffer(stream_id, fe.sr, fe.window, fe.hop, tol,
                                 int(round(cfg.audio.resend_horizon_s * fe.sr)), fe.lead)

    def push(self, buffer: AudioStreamBuffer, payload, tp, offset, ref: Any = None):
        return buffer.push(payload.samples, payload.timestamp, tp, offset, ref), []

    def rejected(self, buffer: AudioStreamBuffer) -> list[tuple[Any, str]]:
        out, buffer.rejected = buffer.rejected, []
        return out

    def newest(self, buffer: AudioStreamBuffer) -> float | None:
        return None if buffer.end is None else buffer.end / buffer.sr

    def tallies(self, buffer: AudioStreamBuffer) -> dict[str, int]:
        s = buffer.stats
        return {"duplicates": s.duplicate_samples, "dropped": s.dropped_samples, "steps_back": s.steps_back,
                "accepted": s.accepted}

    def held(self, buffer: AudioStreamBuffer) -> int:
        return buffer.held_samples

    def rows(self, model: Any, rec: Recording, starts, scores, alerts, **_: Any) -> Iterator[dict]:
        begin, end = self.times(model.frontend, starts)
        for b, e, sc, al in zip(begin.tolist(), end.tolist(), scores, alerts):
            yield {"file": rec.name, "start_s": round(b, 6), "end_s": round(e, 6), "score": float(sc), "alert": bool(al)}
